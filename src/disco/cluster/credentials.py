"""Per-cluster credentials: what makes a cluster's endpoints answer its own tenant only.

Made once when the cluster is created and sealed with its other secrets (never stored or
logged in clear). Every framework takes what it needs through its framework.yaml
(`{{ credentials.… }}` in `files:` and check `headers:`); a tenant's client gets the same
through `GET /api/v1/clusters/{id}/credentials`.

- `tls_cert`, `tls_key`: one self-signed certificate per cluster, as dask-gateway makes
  them. It is its own CA and the certificate of every party (scheduler, workers, clients):
  Dask's TLS requires a certificate on both sides and does not check host names, so
  holding this pair is what lets a peer in.
- `spark_secret`: Spark's `spark.authenticate.secret`, shared by the daemons and drivers.
- `token`: the Map/Reduce master's and nodes' bearer token.
"""

from __future__ import annotations

import datetime as dt
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, Field

from disco.cluster import plan
from disco.cluster.models import Cluster
from disco.cluster.secrets import SecretBox
from disco.errors import Conflict
from disco.frameworks.catalog import Catalog

# A cluster lives hours or days; the certificate outlives any cluster the service manager
# would keep (max_age is capped far below this).
CERT_VALIDITY = dt.timedelta(days=3650)
SECRET_BYTES = 32


def new_credentials(cluster_id: str) -> dict[str, str]:
    cert, key = self_signed_certificate(f"disco-{cluster_id}")
    return {"tls_cert": cert, "tls_key": key,
            "spark_secret": secrets.token_urlsafe(SECRET_BYTES),
            "token": secrets.token_urlsafe(SECRET_BYTES)}


def self_signed_certificate(name: str) -> tuple[str, str]:
    """(certificate PEM, unencrypted PKCS#8 key PEM) for `name`, usable as its own CA.

    EC P-256: making a whole set takes about 0.2 ms here (an RSA-2048 key alone about
    36 ms), and every TLS stack the frameworks use accepts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate a little clock skew
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                              x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert_pem, key_pem


class FrameworkAccess(BaseModel):
    """What one framework's client needs (the framework.yaml `client:` section, rendered)."""

    env: dict[str, str] = Field(description="Environment variables to set as they are.")
    files: dict[str, str] = Field(description="Relative path -> content: files to write, privately "
                                              "(0600), in a directory of the client's own.")
    file_env: dict[str, str] = Field(description="Environment variables whose value is the path, in "
                                                 "that directory, of one of `files` ('.' is the "
                                                 "directory itself).")


class ClusterCredentials(BaseModel):
    id: str
    name: str
    frameworks: dict[str, FrameworkAccess] = Field(
        description="Per framework that has a client: addresses, PEMs, secrets, tokens.")
    web_token: str = Field(description="The cluster's token: its web UIs and, on nodes that are hosts of their "
                                       "own (provider ssh), each node's log server (`outputs.node_logs`, port "
                                       "8084) take it as `Authorization: Bearer` or as an HTTP Basic password.")


def client_credentials(cluster: Cluster, catalog: Catalog, box: SecretBox) -> ClusterCredentials:
    """The tenant's view of the cluster's credentials, once the cluster has addresses."""
    if cluster.target == "deleted" or cluster.state in ("deleting", "deleted"):
        raise Conflict(f"cluster {cluster.id} is {cluster.state}: it has no endpoints to connect to",
                       code="invalid_state")
    if any(not node.host for node in plan.live_nodes(cluster)):
        raise Conflict(f"cluster {cluster.id} has no addresses yet (state: {cluster.state}); "
                       "ask again once it is ready", code="not_provisioned")
    credentials = (box.open(cluster.secrets_enc) or {}).get("credentials")
    if not credentials:
        # Clusters made before credentials existed run open; say so rather than hand out nothing.
        raise Conflict(f"cluster {cluster.id} was created without credentials", code="no_credentials")
    access = plan.client_access(cluster, catalog, credentials)
    return ClusterCredentials(id=cluster.id, name=cluster.name,
                              frameworks={name: FrameworkAccess(**value) for name, value in access.items()},
                              web_token=credentials.get("token", ""))
