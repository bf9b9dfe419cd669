"""The one settings object: environment variables with the prefix ``BATTERYLOOP_``.

=====================================  =========================================================
``BATTERYLOOP_EU_BOOTSTRAP``           bootstrap servers of the EU (Catena-X side) cluster
``BATTERYLOOP_JP_BOOTSTRAP``           bootstrap servers of the JP (Ouranos side) cluster
``BATTERYLOOP_SCHEMA_REGISTRY_URL``    Confluent schema registry; unset: single-object encoding
``BATTERYLOOP_SHARING_SECRET``         the data-sharing agreement's pseudonymisation secret
``BATTERYLOOP_CONNECT_TIMEOUT``        seconds a command waits for a cluster to answer before it
                                       reports it unreachable (default 10)
``BATTERYLOOP_PASSPORT_BASE_URL``     base of the passports' resolvable URLs, which their QR codes
                                       hold (default ``http://127.0.0.1:6066``, the worker's views)
``BATTERYLOOP_KAFKA_<PROPERTY>``       any librdkafka property for every client, dots written as
                                       underscores: ``BATTERYLOOP_KAFKA_SASL_MECHANISM=PLAIN``
``BATTERYLOOP_EU_KAFKA_<PROPERTY>``    the same for EU clients only (``JP`` likewise)
=====================================  =========================================================

librdkafka property names contain no underscores, so the mapping back to dots is exact.
Command-line ``-X property=value`` options override all of these.

Secrets (the sharing secret, and every Kafka property whose name says ``password`` or
``secret``, or holds a private key) are kept as :class:`pydantic.SecretStr`: the settings' repr
shows ``'**********'`` for them. They are revealed only in the :class:`ClientConfig` that
:meth:`Settings.client_config` builds for a client, whose own repr masks them again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from schemas.values import Region

PREFIX = "BATTERYLOOP_"
MASK = "**********"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_PASSPORT_BASE_URL = "http://127.0.0.1:6066"

# Property names that hold a secret although neither word appears in them.
_SECRET_PROPERTIES = frozenset({"sasl.oauthbearer.client.secret", "ssl.key.pem"})

# Which environment the settings read: os.environ unless from_env() was given another mapping.
_environ: ContextVar[Mapping[str, str] | None] = ContextVar("batteryloop_environ", default=None)


def is_secret_property(name: str) -> bool:
    """Whether a librdkafka property holds a secret (never to be shown)."""
    lowered = name.lower()
    return "password" in lowered or "secret" in lowered or lowered in _SECRET_PROPERTIES


def _current_environ() -> Mapping[str, str]:
    given = _environ.get()
    return os.environ if given is None else given


def _properties(environ: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {
        name[len(prefix) :].lower().replace("_", "."): value
        for name, value in environ.items()
        if name.startswith(prefix) and len(name) > len(prefix)
    }


def _guard(properties: Mapping[str, str | SecretStr]) -> dict[str, str | SecretStr]:
    return {
        name: SecretStr(value) if is_secret_property(name) and isinstance(value, str) else value
        for name, value in properties.items()
    }


class _Environment(EnvSettingsSource):
    """The plain variables (``BATTERYLOOP_EU_BOOTSTRAP`` ...) from the chosen environment."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # the property dicts come from _KafkaProperties only, never from one JSON variable
        skip = {f"{PREFIX}KAFKA".lower(), f"{PREFIX}REGION_KAFKA".lower()}
        return {
            name if self.case_sensitive else name.lower(): value
            for name, value in _current_environ().items()
            if name.lower() not in skip
        }


class _KafkaProperties(PydanticBaseSettingsSource):
    """``BATTERYLOOP_KAFKA_*`` and ``BATTERYLOOP_<REGION>_KAFKA_*``: open-ended property names,
    which no fixed field could list."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is produced in __call__

    def __call__(self) -> dict[str, Any]:
        environ = _current_environ()
        return {
            "kafka": _properties(environ, f"{PREFIX}KAFKA_"),
            "region_kafka": {r: _properties(environ, f"{PREFIX}{r.value}_KAFKA_") for r in Region},
        }


class ClientConfig(dict[str, str]):
    """librdkafka properties for one client, secrets revealed (librdkafka needs them), but
    masked in ``repr``/``str``/``format`` so that a traceback or log line cannot show them."""

    def masked(self) -> dict[str, str]:
        return {k: MASK if is_secret_property(k) else v for k, v in self.items()}

    def __repr__(self) -> str:
        return f"ClientConfig({self.masked()!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)


class Settings(BaseSettings):
    """Everything configurable from the environment; see the module docstring for the names."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_ignore_empty=True,  # an empty variable means unset, as before
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,  # a validation error must not echo a secret
    )

    eu_bootstrap: str | None = None
    jp_bootstrap: str | None = None
    schema_registry_url: str | None = None
    sharing_secret: SecretStr | None = None
    connect_timeout: float = Field(default=DEFAULT_CONNECT_TIMEOUT, gt=0)
    passport_base_url: str = DEFAULT_PASSPORT_BASE_URL
    kafka: dict[str, str | SecretStr] = Field(default_factory=dict)  # every client
    region_kafka: dict[Region, dict[str, str | SecretStr]] = Field(default_factory=dict)

    @field_validator("passport_base_url", mode="after")
    @classmethod
    def _base_url(cls, value: str) -> str:
        from streams.domain.links import normalized_base

        return normalized_base(value)

    @field_validator("kafka", mode="after")
    @classmethod
    def _secret_properties(cls, value: dict[str, str | SecretStr]) -> dict[str, str | SecretStr]:
        return _guard(value)

    @field_validator("region_kafka", mode="after")
    @classmethod
    def _secret_region_properties(
        cls, value: dict[Region, dict[str, str | SecretStr]]
    ) -> dict[Region, dict[str, str | SecretStr]]:
        return {region: _guard(properties) for region, properties in value.items()}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _Environment(settings_cls), _KafkaProperties(settings_cls)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of ``environ`` (default: the process environment)."""
        with _reading(environ):
            return cls()

    @property
    def bootstrap(self) -> dict[Region, str]:
        """Each region's bootstrap servers, where set."""
        given = {Region.EU: self.eu_bootstrap, Region.JP: self.jp_bootstrap}
        return {region: servers for region, servers in given.items() if servers}

    def client_config(
        self,
        region: Region,
        overrides: Mapping[str, str] | None = None,
        bootstrap: str | None = None,
    ) -> ClientConfig:
        """librdkafka configuration for a client of ``region``'s cluster.

        Precedence, lowest first: common properties, the region's properties, the region's
        bootstrap servers, ``bootstrap`` given explicitly, ``overrides`` (``-X``).
        """
        config = ClientConfig(
            (name, value.get_secret_value() if isinstance(value, SecretStr) else value)
            for name, value in {**self.kafka, **self.region_kafka.get(region, {})}.items()
        )
        servers = bootstrap or self.bootstrap.get(region)
        if servers:
            config["bootstrap.servers"] = servers
        config.update(overrides or {})
        if not config.get("bootstrap.servers"):
            raise ValueError(
                f"no bootstrap servers for the {region.value} cluster: set "
                f"{PREFIX}{region.value}_BOOTSTRAP, pass --bootstrap, or -X bootstrap.servers=..."
            )
        return config

    def sharing_secret_bytes(self) -> bytes | None:
        """The sharing secret, revealed for the policy that pseudonymises with it."""
        secret = self.sharing_secret
        return None if secret is None else secret.get_secret_value().encode()


@contextmanager
def _reading(environ: Mapping[str, str] | None) -> Iterator[None]:
    token = _environ.set(environ)
    try:
        yield
    finally:
        _environ.reset(token)


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """``-X property=value`` options to a dict, with a clear error for a malformed one."""
    out = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            # Only what can be a property name is echoed: "=value", or "sasl.password:x" where
            # "=" was mistyped, may hold a password.
            head = pair.split(":", 1)[0].split(" ", 1)[0]
            shown = f"'{head}...'" if not sep else "'=...' (no property name)"
            raise ValueError(f"-X {shown}: expected property=value, e.g. -X security.protocol=SSL")
        out[name.strip()] = value
    return out
