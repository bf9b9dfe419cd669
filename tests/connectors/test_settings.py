from __future__ import annotations

import pytest

from connectors.settings import Settings, parse_overrides
from schemas.values import Region


def test_properties_pass_through_with_region_precedence() -> None:
    settings = Settings.from_env(
        {
            "BATTERYLOOP_EU_BOOTSTRAP": "eu:9092",
            "BATTERYLOOP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "BATTERYLOOP_KAFKA_SASL_MECHANISM": "PLAIN",
            "BATTERYLOOP_EU_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "OTHER": "x",
        }
    )
    config = settings.client_config(Region.EU, {"client.id": "me"})
    assert config == {
        "bootstrap.servers": "eu:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "client.id": "me",
    }


def test_missing_bootstrap_names_the_variable() -> None:
    with pytest.raises(ValueError, match="BATTERYLOOP_JP_BOOTSTRAP"):
        Settings.from_env({}).client_config(Region.JP)


def test_overrides_need_an_equals_sign() -> None:
    assert parse_overrides(["a.b=c=d"]) == {"a.b": "c=d"}
    with pytest.raises(ValueError, match="property=value"):
        parse_overrides(["security.protocol"])
