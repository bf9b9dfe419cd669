"""The one settings object: environment variables with the prefix ``BATTERYLOOP_``.

=====================================  =========================================================
``BATTERYLOOP_EU_BOOTSTRAP``           bootstrap servers of the EU (Catena-X side) cluster
``BATTERYLOOP_JP_BOOTSTRAP``           bootstrap servers of the JP (Ouranos side) cluster
``BATTERYLOOP_SCHEMA_REGISTRY_URL``    Confluent schema registry; unset: single-object encoding
``BATTERYLOOP_SHARING_SECRET``         the data-sharing agreement's pseudonymisation secret
``BATTERYLOOP_KAFKA_<PROPERTY>``       any librdkafka property for every client, dots written as
                                       underscores: ``BATTERYLOOP_KAFKA_SASL_MECHANISM=PLAIN``
``BATTERYLOOP_EU_KAFKA_<PROPERTY>``    the same for EU clients only (``JP`` likewise)
=====================================  =========================================================

librdkafka property names contain no underscores, so the mapping back to dots is exact.
Command-line ``-X property=value`` options override all of these.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.values import Region

PREFIX = "BATTERYLOOP_"


def _properties(environ: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {
        name[len(prefix) :].lower().replace("_", "."): value
        for name, value in environ.items()
        if name.startswith(prefix) and len(name) > len(prefix)
    }


@dataclass(frozen=True)
class Settings:
    bootstrap: dict[Region, str] = field(default_factory=dict)
    schema_registry_url: str | None = None
    kafka: dict[str, str] = field(default_factory=dict)  # every client
    region_kafka: dict[Region, dict[str, str]] = field(default_factory=dict)
    sharing_secret: bytes | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            bootstrap={
                r: env[f"{PREFIX}{r.value}_BOOTSTRAP"]
                for r in Region
                if env.get(f"{PREFIX}{r.value}_BOOTSTRAP")
            },
            schema_registry_url=env.get(f"{PREFIX}SCHEMA_REGISTRY_URL") or None,
            kafka=_properties(env, f"{PREFIX}KAFKA_"),
            region_kafka={r: _properties(env, f"{PREFIX}{r.value}_KAFKA_") for r in Region},
            sharing_secret=env[f"{PREFIX}SHARING_SECRET"].encode()
            if env.get(f"{PREFIX}SHARING_SECRET")
            else None,
        )

    def client_config(
        self,
        region: Region,
        overrides: Mapping[str, str] | None = None,
        bootstrap: str | None = None,
    ) -> dict[str, str]:
        """librdkafka configuration for a client of ``region``'s cluster.

        Precedence, lowest first: common properties, the region's properties, the region's
        bootstrap servers, ``bootstrap`` given explicitly, ``overrides`` (``-X``).
        """
        config = {**self.kafka, **self.region_kafka.get(region, {})}
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


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """``-X property=value`` options to a dict, with a clear error for a malformed one."""
    out = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"-X {pair!r}: expected property=value, e.g. -X security.protocol=SSL")
        out[name.strip()] = value
    return out
