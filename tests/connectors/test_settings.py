from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.settings import Settings, is_secret_property, parse_overrides
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


def test_precedence_lowest_first_common_region_bootstrap_explicit_overrides() -> None:
    settings = Settings.from_env(
        {
            "BATTERYLOOP_KAFKA_BOOTSTRAP_SERVERS": "common:1",
            "BATTERYLOOP_KAFKA_CLIENT_ID": "common",
            "BATTERYLOOP_KAFKA_LINGER_MS": "1",
            "BATTERYLOOP_EU_KAFKA_BOOTSTRAP_SERVERS": "region-property:2",
            "BATTERYLOOP_EU_KAFKA_CLIENT_ID": "region",
            "BATTERYLOOP_JP_KAFKA_CLIENT_ID": "other region",
        }
    )
    assert settings.client_config(Region.EU)["bootstrap.servers"] == "region-property:2"
    assert settings.client_config(Region.JP)["bootstrap.servers"] == "common:1"
    assert settings.client_config(Region.JP)["client.id"] == "other region"
    with_bootstrap = settings.model_copy(update={"eu_bootstrap": "region-bootstrap:3"})
    assert with_bootstrap.client_config(Region.EU)["bootstrap.servers"] == "region-bootstrap:3"
    explicit = with_bootstrap.client_config(Region.EU, bootstrap="explicit:4")
    assert explicit["bootstrap.servers"] == "explicit:4"
    overridden = with_bootstrap.client_config(
        Region.EU, {"bootstrap.servers": "override:5", "client.id": "x"}, bootstrap="explicit:4"
    )
    assert overridden == {"bootstrap.servers": "override:5", "client.id": "x", "linger.ms": "1"}


def test_plain_variables_and_defaults() -> None:
    settings = Settings.from_env(
        {
            "BATTERYLOOP_EU_BOOTSTRAP": "eu:9092",
            "BATTERYLOOP_JP_BOOTSTRAP": "",  # empty: unset
            "BATTERYLOOP_SCHEMA_REGISTRY_URL": "http://registry:8081",
            "BATTERYLOOP_KAFKA": "not a property",  # no property name: ignored
        }
    )
    assert settings.bootstrap == {Region.EU: "eu:9092"}
    assert settings.kafka == {}
    assert settings.schema_registry_url == "http://registry:8081"
    assert settings.sharing_secret is None and settings.sharing_secret_bytes() is None
    assert settings.connect_timeout == 10.0
    assert Settings.from_env({"BATTERYLOOP_CONNECT_TIMEOUT": "2.5"}).connect_timeout == 2.5
    with pytest.raises(ValueError, match="connect_timeout"):
        Settings.from_env({"BATTERYLOOP_CONNECT_TIMEOUT": "0"})


def test_from_env_reads_only_the_given_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATTERYLOOP_EU_BOOTSTRAP", "from-process:1")
    monkeypatch.setenv("BATTERYLOOP_KAFKA_CLIENT_ID", "from-process")
    assert Settings.from_env({}).bootstrap == {}
    assert Settings.from_env({}).kafka == {}
    assert Settings.from_env().bootstrap == {Region.EU: "from-process:1"}


# any text, marked so that it cannot be a piece of the rendering that happens to match
SECRETS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1
).map(lambda s: f"pw<{s}>")


def _shown(obj: object) -> list[str]:
    return [repr(obj), str(obj), f"{obj}", f"{obj!r}", format(obj, "")]


@given(secret=SECRETS, password=SECRETS, key_password=SECRETS)
def test_settings_and_client_configs_never_show_a_secret(
    secret: str, password: str, key_password: str
) -> None:
    settings = Settings.from_env(
        {
            "BATTERYLOOP_EU_BOOTSTRAP": "eu:9092",
            "BATTERYLOOP_SHARING_SECRET": secret,
            "BATTERYLOOP_KAFKA_SASL_PASSWORD": password,
            "BATTERYLOOP_EU_KAFKA_SSL_KEY_PASSWORD": key_password,
            "BATTERYLOOP_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET": password,
        }
    )
    config = settings.client_config(Region.EU, {"sasl.username": "operator"})
    for shown in [*_shown(settings), *_shown(config), *_shown(settings.kafka)]:
        for value in (secret, password, key_password):
            assert value not in shown
    # ... yet the client gets them, and the policy its secret
    assert config["sasl.password"] == password
    assert config["ssl.key.password"] == key_password
    assert config["sasl.oauthbearer.client.secret"] == password
    assert dict(config)["sasl.password"] == password
    assert settings.sharing_secret_bytes() == secret.encode()


def test_secret_properties_by_name() -> None:
    for name in ("sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret"):
        assert is_secret_property(name)
    for name in ("sasl.username", "security.protocol", "bootstrap.servers"):
        assert not is_secret_property(name)


def test_a_malformed_override_does_not_echo_its_value() -> None:
    with pytest.raises(ValueError) as info:
        parse_overrides(["=hunter2-secret"])
    assert "hunter2-secret" not in str(info.value)
