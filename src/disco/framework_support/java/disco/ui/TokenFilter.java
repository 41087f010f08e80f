package disco.ui;

import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.FilterConfig;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Base64;

/**
 * A servlet filter for Spark's web UIs (spark.ui.filters): a request passes only with the
 * cluster's token, as "Authorization: Bearer TOKEN" (programs, the service manager's checks)
 * or HTTP Basic with any user name and the token as password (browsers ask for it).
 * The token is read from the file named by the filter's "tokenFile" parameter.
 */
public final class TokenFilter implements Filter {
    private static final byte[] NONE = new byte[0];
    private byte[] token;

    @Override
    public void init(FilterConfig config) throws ServletException {
        String file = config.getInitParameter("tokenFile");
        if (file == null) {
            throw new ServletException("disco.ui.TokenFilter needs its tokenFile parameter");
        }
        try {
            token = Files.readString(Path.of(file)).strip().getBytes(StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new ServletException("cannot read the token file " + file, e);
        }
        if (token.length == 0) {
            throw new ServletException("the token file " + file + " is empty");
        }
    }

    @Override
    public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
            throws IOException, ServletException {
        String header = ((HttpServletRequest) request).getHeader("Authorization");
        byte[] given = header == null ? NONE : given(header);
        // Constant time for a token of the right length; a wrong length says nothing useful.
        if (given.length > 0 && MessageDigest.isEqual(given, token)) {
            chain.doFilter(request, response);
            return;
        }
        HttpServletResponse http = (HttpServletResponse) response;
        http.setHeader("WWW-Authenticate", "Basic realm=\"disco\"");
        http.sendError(HttpServletResponse.SC_UNAUTHORIZED,
                "this cluster's web pages need its token (HTTP Basic: any user name, the token as password)");
    }

    private static byte[] given(String header) {
        String[] parts = header.strip().split(" ", 2);
        if (parts.length != 2) {
            return NONE;
        }
        if (parts[0].equalsIgnoreCase("Bearer")) {
            return parts[1].strip().getBytes(StandardCharsets.UTF_8);
        }
        if (parts[0].equalsIgnoreCase("Basic")) {
            try {
                String pair = new String(Base64.getDecoder().decode(parts[1].strip()), StandardCharsets.UTF_8);
                int colon = pair.indexOf(':');
                return colon < 0 ? NONE : pair.substring(colon + 1).getBytes(StandardCharsets.UTF_8);
            } catch (IllegalArgumentException e) {
                return NONE;
            }
        }
        return NONE;
    }

    @Override
    public void destroy() {
    }
}
