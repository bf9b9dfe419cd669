"""The librdkafka security properties as faust broker credentials, without a broker."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import faust
import pytest

from connectors.kafka.credentials import UnsupportedSecurity, faust_credentials


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A self-signed CA and a client certificate whose key is encrypted with 'keypass'."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make certificates")
    d = tmp_path_factory.mktemp("pki")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "2", "-subj", "/CN=test-ca")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-passout", "pass:keypass", "-keyout", "client.key",
            "-out", "client.csr", "-subj", "/CN=BPNL0000000MIN01")  # fmt: skip
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "client.pem", "-days", "2")  # fmt: skip
    return {
        "ssl.ca.location": str(d / "ca.pem"),
        "ssl.certificate.location": str(d / "client.pem"),
        "ssl.key.location": str(d / "client.key"),
        "ssl.key.password": "keypass",
    }


def test_plaintext_needs_no_credentials() -> None:
    assert faust_credentials({}) is None
    assert faust_credentials({"security.protocol": "plaintext", "linger.ms": "5"}) is None


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_plaintext(mechanism: str) -> None:
    credentials = faust_credentials(
        {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": mechanism,
            "sasl.username": "operator",
            "sasl.password": "pw",
        }
    )
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_PLAINTEXT"
    assert credentials.mechanism.value == mechanism
    assert (credentials.username, credentials.password) == ("operator", "pw")
    assert credentials.ssl_context is None


def test_sasl_ssl_with_the_ca_and_client_certificate(pki: dict[str, str]) -> None:
    credentials = faust_credentials(
        {
            "security.protocol": "sasl_ssl",
            "sasl.mechanism": "scram-sha-512",
            "sasl.username": "operator",
            "sasl.password": "pw",
            **pki,
        }
    )
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    context = credentials.ssl_context
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test-ca"),),)]


def test_ssl_only_and_no_host_name_check(pki: dict[str, str]) -> None:
    credentials = faust_credentials(
        {
            "security.protocol": "SSL",
            "ssl.ca.location": pki["ssl.ca.location"],
            "ssl.endpoint.identification.algorithm": "none",
        }
    )
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol.value == "SSL"
    assert not credentials.context.check_hostname
    assert credentials.context.verify_mode == ssl.CERT_REQUIRED


def test_gssapi_is_librdkafkas_default_mechanism() -> None:
    credentials = faust_credentials(
        {"security.protocol": "SASL_PLAINTEXT", "sasl.kerberos.service.name": "kafka-eu"}
    )
    assert isinstance(credentials, faust.GSSAPICredentials)
    assert credentials.kerberos_service_name == "kafka-eu"


@pytest.mark.parametrize(
    ("properties", "named"),
    [
        ({"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"}, "sasl.mechanism"),
        ({"security.protocol": "SSL", "ssl.keystore.location": "k.p12"}, "ssl.keystore.location"),
        ({"security.protocol": "SSL", "ssl.ca.pem": "-----BEGIN"}, "ssl.ca.pem"),
        ({"ssl.ca.location": "/etc/ca.pem"}, "ssl.ca.location"),  # plaintext with a CA
        ({"security.protocol": "SSL", "sasl.username": "u"}, "sasl.username"),
        ({"security.protocol": "SASL_PLAINTEXT", "ssl.ca.location": "x"}, "ssl.ca.location"),
        ({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN"}, "sasl.username"),
        (
            {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN",
                "sasl.username": "u",
            },
            "sasl.password",
        ),
        (
            {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN",
                "sasl.mechanisms": "SCRAM-SHA-256",
            },
            "sasl.mechanisms",
        ),
        ({"security.protocol": "KERBEROS"}, "security.protocol"),
        ({"security.protocol": "SSL", "ssl.ca.location": "/nonexistent/ca.pem"}, "ssl.ca.location"),
        ({"security.protocol": "SSL", "ssl.key.location": "k.pem"}, "ssl.key.location"),
        (
            {"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "dns"},
            "ssl.endpoint.identification.algorithm",
        ),
    ],
)
def test_an_unsupported_combination_names_the_property(
    properties: dict[str, str], named: str
) -> None:
    with pytest.raises(UnsupportedSecurity, match=named.replace(".", r"\.")):
        faust_credentials(properties)


def test_a_wrong_key_password_is_an_error_without_the_password(pki: dict[str, str]) -> None:
    with pytest.raises(UnsupportedSecurity, match="ssl.certificate.location") as info:
        faust_credentials({"security.protocol": "SSL", **pki, "ssl.key.password": "wrong-pass"})
    assert "wrong-pass" not in str(info.value) and "keypass" not in str(info.value)


def test_the_password_is_not_in_the_credentials_repr() -> None:
    credentials = faust_credentials(
        {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": "operator",
            "sasl.password": "pw<hidden>",
        }
    )
    assert "pw<hidden>" not in repr(credentials)


def test_the_ca_file_is_loaded(pki: dict[str, str], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(UnsupportedSecurity, match="ssl.ca.location"):
        faust_credentials({"security.protocol": "SSL", "ssl.ca.location": str(garbage)})
