"""The librdkafka security properties as faust's ``broker_credentials``.

The stream processors' own clients are aiokafka's (under faust), which take no librdkafka
properties. So that one set of settings (``BATTERYLOOP_KAFKA_SECURITY_PROTOCOL``, ``-X
sasl.username=...``) secures every client, :func:`faust_credentials` maps them:

==================  ==========================================================================
security.protocol   faust credentials
==================  ==========================================================================
PLAINTEXT / unset   none
SSL                 ``SSLCredentials`` with an SSL context from the ``ssl.*`` properties
SASL_PLAINTEXT      ``SASLCredentials`` (PLAIN, SCRAM-SHA-256/512) or ``GSSAPICredentials``
SASL_SSL            the same, with the SSL context
==================  ==========================================================================

The SSL context: ``ssl.ca.location`` (default: the system's CAs), ``ssl.certificate.location``
with ``ssl.key.location`` and ``ssl.key.password`` for a client certificate,
``ssl.endpoint.identification.algorithm=none`` to skip the host name check. Anything else
security-related that aiokafka cannot honour (a PEM in a property, a keystore, OAUTHBEARER, an
``ssl.*`` property on a plaintext connection) is an :class:`UnsupportedSecurity` naming the
property, rather than a worker that silently connects differently from the other clients.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import faust
from faust.types.auth import CredentialsT

SASL_MECHANISMS = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI"}
SSL_PROPERTIES = {
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
}
SASL_PROPERTIES = {"sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password"}
GSSAPI_PROPERTIES = {"sasl.kerberos.service.name"}


class UnsupportedSecurity(ValueError):
    """A security property (or combination) the processors' clients cannot honour."""


def faust_credentials(properties: Mapping[str, str]) -> CredentialsT | None:
    """faust ``broker_credentials`` equivalent to the librdkafka ``properties``; None for a
    plaintext connection. Raises :class:`UnsupportedSecurity` naming the offending property."""
    protocol = properties.get("security.protocol", "PLAINTEXT").upper()
    uses_ssl = protocol in ("SSL", "SASL_SSL")
    uses_sasl = protocol in ("SASL_PLAINTEXT", "SASL_SSL")
    if not uses_ssl and not uses_sasl and protocol != "PLAINTEXT":
        raise UnsupportedSecurity(
            f"security.protocol={protocol}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
        )
    mechanism = _mechanism(properties) if uses_sasl else None
    allowed = (
        (SSL_PROPERTIES if uses_ssl else set())
        | (SASL_PROPERTIES if uses_sasl else set())
        | (GSSAPI_PROPERTIES if mechanism == "GSSAPI" else set())
    )
    for name in sorted(properties):
        if name.startswith(("ssl.", "sasl.", "ssl_")) and name not in allowed:
            raise UnsupportedSecurity(
                f"{name}: not supported by the stream processors' clients with "
                f"security.protocol={protocol}"
                + (f" and sasl.mechanism={mechanism}" if mechanism else "")
            )
    context = ssl_context(properties) if uses_ssl else None
    if not uses_sasl:
        return None if context is None else faust.SSLCredentials(context)
    if mechanism == "GSSAPI":
        return faust.GSSAPICredentials(
            kerberos_service_name=properties.get("sasl.kerberos.service.name", "kafka"),
            ssl_context=context,
        )
    for name in ("sasl.username", "sasl.password"):
        if not properties.get(name):
            raise UnsupportedSecurity(f"{name}: required with sasl.mechanism={mechanism}")
    return faust.SASLCredentials(
        username=properties["sasl.username"],
        password=properties["sasl.password"],
        mechanism=mechanism,
        ssl_context=context,
    )


def _mechanism(properties: Mapping[str, str]) -> str:
    # librdkafka knows both names; its default is GSSAPI
    given = {
        name: properties[name].upper()
        for name in ("sasl.mechanisms", "sasl.mechanism")
        if properties.get(name)
    }
    if len(set(given.values())) > 1:
        raise UnsupportedSecurity(
            "sasl.mechanism and sasl.mechanisms disagree: "
            + ", ".join(f"{k}={v}" for k, v in given.items())
        )
    mechanism = next(iter(given.values()), "GSSAPI")
    if mechanism not in SASL_MECHANISMS:
        name = next(iter(given), "sasl.mechanism")
        raise UnsupportedSecurity(
            f"{name}={mechanism}: the stream processors' clients support "
            f"{', '.join(sorted(SASL_MECHANISMS))}"
        )
    return mechanism


def ssl_context(properties: Mapping[str, str]) -> ssl.SSLContext:
    """An SSL client context from librdkafka's ``ssl.*`` properties."""
    ca = properties.get("ssl.ca.location")
    try:
        context = ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise UnsupportedSecurity(f"ssl.ca.location={ca}: cannot load: {exc}") from None
    identification = properties.get("ssl.endpoint.identification.algorithm", "https").lower()
    if identification == "none":
        context.check_hostname = False
    elif identification != "https":
        raise UnsupportedSecurity(
            f"ssl.endpoint.identification.algorithm={identification}: expected https or none"
        )
    certificate = properties.get("ssl.certificate.location")
    key = properties.get("ssl.key.location")
    if certificate is None:
        for name in ("ssl.key.location", "ssl.key.password"):
            if properties.get(name):
                raise UnsupportedSecurity(f"{name}: given without ssl.certificate.location")
        return context
    try:
        context.load_cert_chain(certificate, key, properties.get("ssl.key.password"))
    except (OSError, ssl.SSLError) as exc:
        # the password is never part of the message; the paths are not secret
        raise UnsupportedSecurity(
            f"ssl.certificate.location={certificate}, ssl.key.location={key}: cannot load the "
            f"client certificate: {exc.__class__.__name__}: {getattr(exc, 'strerror', '') or exc}"
        ) from None
    return context
