"""disco.comm's cluster client: plain http:// without loading certificates, and https://
(also when an http:// URL redirects there) verified as ever. Servers on loopback only."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from disco import comm
from disco.error import CommError

HOST = "127.0.0.1"
# Lines of many lengths (empty ones too) across several of the stream's 64 KiB chunks, the
# last without its newline.
LINES = b"".join(b"%d %s\n" % (i, b"w" * (i % 97)) for i in range(20000)) + b"\n\nlast, no newline"


class _Handler(http.server.BaseHTTPRequestHandler):
    redirect_to = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/short":  # promises more than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"only ten b")
            self.close_connection = True
            return
        if self.path == "/missing":
            body = b'{"error": {"code": "not_found", "message": "no such blob"}}'
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/headers":
            body = json.dumps({k: self.headers.get(k) for k in ("Authorization", "Range")}).encode()
        else:
            body = LINES if self.path == "/lines" else b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _self_signed(where: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = where / "cert.pem", where / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _serve(server: http.server.HTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture()
def plain() -> Iterator[str]:
    yield from _serve(http.server.HTTPServer((HOST, 0), _Handler))


@pytest.fixture()
def tls(tmp_path: Path) -> Iterator[str]:
    server = http.server.HTTPServer((HOST, 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(tmp_path))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield from _serve(server)


def test_plain_http_is_read(plain: str) -> None:
    assert comm.request("GET", f"http://{plain}/data").content == b"hello"


def test_https_certificates_are_still_verified(tls: str, plain: str) -> None:
    # The server's certificate is self-signed: no trusted authority vouches for it.
    with pytest.raises(CommError, match="CERTIFICATE_VERIFY_FAILED"):
        comm.request("GET", f"https://{tls}/data")
    _Handler.redirect_to = f"https://{tls}/data"
    with pytest.raises(CommError, match="CERTIFICATE_VERIFY_FAILED"):
        comm.request("GET", f"http://{plain}/redirect")


def test_a_streamed_body_is_read_by_lines_as_a_file_is(plain: str) -> None:
    expected = LINES.splitlines(keepends=True)
    assert list(comm.open_url(f"http://{plain}/lines")) == expected
    batches = list(comm.open_url(f"http://{plain}/lines").record_batches())
    assert len(batches) > 1 and [line for batch in batches for line in batch] == expected
    stream = comm.open_url(f"http://{plain}/lines")
    first, second = stream.readline(), stream.readline()  # line by line, then the rest
    assert [first, second, *stream] == expected
    assert comm.open_url(f"http://{plain}/lines").read() == LINES


# -- plain http:// without httpx (the standard library's http.client) --------------------------


def test_a_body_cut_short_or_refused_is_a_comm_error(plain: str) -> None:
    with pytest.raises(CommError, match="truncated at 10 of 100 bytes"):
        comm.open_url(f"http://{plain}/short").read()
    with pytest.raises(CommError, match="no such blob") as refused:
        comm.open_url(f"http://{plain}/missing")
    assert refused.value.code == 404


def test_a_redirect_is_followed_and_a_ddfs_token_and_range_are_sent(plain: str) -> None:
    _Handler.redirect_to = f"http://{plain}/lines"
    assert comm.open_url(f"http://{plain}/redirect").read() == LINES
    sent = json.loads(comm.open_remote(f"http://{plain}/headers", token="secret").read())
    assert sent["Authorization"] == "Basic dG9rZW46c2VjcmV0"  # token:secret, as Disco sends it
    assert json.loads(comm.open_url(f"http://{plain}/headers", offset=7).read())["Range"] == "bytes=7-"


READ_AND_SAY = ("import sys\nfrom disco import comm\nassert comm.open_url(sys.argv[1], trust_env=True).read()"
                "\nprint('httpx' in sys.modules)")


def test_a_plain_read_does_not_import_httpx_unless_a_proxy_is_configured(plain: str) -> None:
    """Importing httpx cost a task ~0.1 s, most of a small reduce task's time."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    run = [sys.executable, "-c", READ_AND_SAY, f"http://{plain}/lines"]
    assert subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout.strip() == "False"
    proxied = {**env, "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": HOST}  # httpx decides (here: direct)
    assert subprocess.run(run, env=proxied, capture_output=True, text=True, check=True).stdout.strip() == "True"


class _KeepAliveHandler(_Handler):
    protocol_version = "HTTP/1.1"  # as the nodes' data servers: connections stay open


@pytest.fixture()
def keepalive() -> Iterator[str]:
    yield from _serve(http.server.ThreadingHTTPServer((HOST, 0), _KeepAliveHandler))


def test_a_connection_is_used_again_once_a_body_is_read_whole(keepalive: str) -> None:
    plain = keepalive
    first = comm.open_url(f"http://{plain}/lines")
    assert first.read() == LINES
    first.close()
    second = comm.open_url(f"http://{plain}/data")
    assert second._conn is first._conn and second.read() == b"hello"  # one connection, kept alive
    second.close()
    half = comm.open_url(f"http://{plain}/lines")
    half.readline()
    half.close()  # not read to the end: that connection is closed, not kept
    assert comm.open_url(f"http://{plain}/data")._conn is not half._conn
