"""Bearer-token scopes, TLS and mTLS against a real server (certificates made in the test)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from serving.client import ClientError, SetlistClient, new_event
from serving.grpc.auth import TokenAuth, parse_tokens
from serving.grpc.server import server_credentials
from tests.fakes.transport import make_settings

TOKENS = "reader-secret:read,writer-secret:write,admin:with:colon:read+write"


def _rank_code(client: SetlistClient) -> grpc.StatusCode:
    try:
        client.rank("user-1", k=1)
    except ClientError as exc:
        return exc.code
    return grpc.StatusCode.OK


def _track_code(client: SetlistClient) -> grpc.StatusCode:
    try:
        client.track([new_event("user-1", "item-1", "skip")])
    except ClientError as exc:
        return exc.code
    return grpc.StatusCode.OK


def test_token_scopes(serve_fake):
    server, anonymous, _ = serve_fake(auth_tokens=TOKENS)

    def as_(token: str) -> SetlistClient:
        return SetlistClient(f"127.0.0.1:{server.port}", token=token)

    with (
        as_("reader-secret") as reader,
        as_("writer-secret") as writer,
        as_("admin:with:colon") as admin,
        as_("guess") as stranger,
    ):
        assert _rank_code(anonymous) == grpc.StatusCode.UNAUTHENTICATED
        assert _rank_code(stranger) == grpc.StatusCode.UNAUTHENTICATED
        assert (_rank_code(reader), _track_code(reader)) == (grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED)
        assert (_rank_code(writer), _track_code(writer)) == (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.OK)
        assert (_rank_code(admin), _track_code(admin)) == (grpc.StatusCode.OK, grpc.StatusCode.OK)
        with pytest.raises(ClientError) as err:
            reader.track([new_event("user-1", "item-1", "skip")])
        assert err.value.message == "Track needs the 'write' scope; this token has: read"
    assert anonymous.health() == "SERVING"  # probes need no token


def test_tokens_never_appear_in_errors_or_logs(serve_fake, caplog):
    server, _, _ = serve_fake(auth_tokens=TOKENS)
    with SetlistClient(f"127.0.0.1:{server.port}", token="wrong-secret-value") as client:
        with pytest.raises(ClientError) as err:
            client.rank("user-1", k=1)
    assert "secret" not in err.value.message
    assert all("secret" not in r.getMessage() and "secret" not in str(getattr(r, "fields", "")) for r in caplog.records)
    with pytest.raises(ValueError) as bad:
        parse_tokens("ok:read,top-secret-token")
    assert "entry 2" in str(bad.value) and "top-secret" not in str(bad.value)


def test_scope_parsing():
    assert parse_tokens(" a:read , b:write+read ,") == [
        (b"a", frozenset({"read"})),
        (b"b", frozenset({"read", "write"})),
    ]
    for spec in ("a:admin", ":read", "a", ""):
        with pytest.raises(ValueError):
            parse_tokens(spec)
    assert TokenAuth.from_settings(make_settings()) is None


# --- TLS ------------------------------------------------------------------------------------
def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str, key, issuer: tuple[x509.Certificate, object] | None = None, ca: bool = False, server: bool = False
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_cert, issuer_key = issuer or (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate | None = None, key=None) -> Path:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, all from the CA."""
    d = tmp_path_factory.mktemp("pki")
    ca_key, server_key, client_key = _key(), _key(), _key()
    ca = _cert("setlist test CA", ca_key, ca=True)
    return {
        "ca": _write(d / "ca.pem", ca),
        "server_cert": _write(d / "server.pem", _cert("localhost", server_key, (ca, ca_key), server=True)),
        "server_key": _write(d / "server.key", key=server_key),
        "client_cert": _write(d / "client.pem", _cert("client-1", client_key, (ca, ca_key))),
        "client_key": _write(d / "client.key", key=client_key),
    }


def test_tls_roundtrip(serve_fake, pki):
    server, plaintext, _ = serve_fake(tls_cert=pki["server_cert"], tls_key=pki["server_key"])
    with SetlistClient(f"127.0.0.1:{server.port}", tls_ca=pki["ca"]) as client:
        assert client.wait_ready(timeout=10)
        assert len(client.rank("user-1", k=3).items) == 3
    with pytest.raises(ClientError) as err:  # a plaintext client cannot talk to a TLS server
        plaintext.rank("user-1", k=1, timeout=2)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE


def test_mtls_requires_a_client_certificate(serve_fake, pki):
    server, _, _ = serve_fake(tls_cert=pki["server_cert"], tls_key=pki["server_key"], tls_client_ca=pki["ca"])
    target = f"127.0.0.1:{server.port}"
    with SetlistClient(target, tls_ca=pki["ca"], tls_cert=pki["client_cert"], tls_key=pki["client_key"]) as ok:
        assert len(ok.rank("user-1", k=2).items) == 2
    with SetlistClient(target, tls_ca=pki["ca"]) as no_cert:
        with pytest.raises(ClientError) as err:
            no_cert.rank("user-1", k=1, timeout=2)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE


def test_half_configured_tls_is_refused(pki):
    with pytest.raises(ValueError, match="both tls_cert and tls_key"):
        server_credentials(make_settings(tls_cert=pki["server_cert"]))
    with pytest.raises(ValueError, match="mTLS runs on top of TLS"):
        server_credentials(make_settings(tls_client_ca=pki["ca"]))
