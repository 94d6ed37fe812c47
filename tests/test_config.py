"""Settings from the environment and TOML, and the production secret requirements."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import BaseModel, ValidationError

from tastebud.config import GovernancePolicy, RateLimits, Schedule, ServingConfig, Settings
from tastebud.errors import ConfigError
from tastebud.privacy import load_secrets
from test_models import numeric_fields, out_of_bounds, unbounded_fields


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TASTEBUD_DATABASE_URL", "TASTEBUD_REDIS_URL", "TASTEBUD_CONSENT_MODE"):
        monkeypatch.delenv(var, raising=False)
    s = Settings(data_dir=tmp_path)
    assert s.resolved_database_url() == f"sqlite:///{tmp_path}/tastebud.db"
    assert s.redis_url == "memory://"
    assert s.consent_mode == "opt-out"
    assert s.resolved_artifact_dir() == tmp_path / "artifacts"
    assert s.sensitive_fields["email"] == "encrypt" and s.sensitive_fields["ip"] == "drop"
    assert s.should_auto_migrate() is True


def test_environment_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "tastebud.toml"
    toml.write_text('consent_mode = "opt-in"\nmax_batch_events = 50\nredis_url = "redis://x:1/2"\n')
    monkeypatch.setenv("TASTEBUD_CONFIG", str(toml))
    monkeypatch.setenv("TASTEBUD_MAX_BATCH_EVENTS", "20")
    monkeypatch.setenv("TASTEBUD_SENSITIVE_FIELDS", '{"email": "drop"}')
    s = Settings()
    assert s.consent_mode == "opt-in"  # from TOML
    assert s.max_batch_events == 20  # the environment beats TOML
    assert s.redis_url == "redis://x:1/2"
    assert s.sensitive_fields == {"email": "drop"}


def test_invalid_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASTEBUD_CONSENT_MODE", "sometimes")
    with pytest.raises(ValueError, match="consent_mode"):
        Settings()


def test_secrets_are_hidden_in_repr() -> None:
    s = Settings(pseudonym_key="p" * 40, fernet_keys=Fernet.generate_key().decode())
    assert "p" * 40 not in repr(s) and "p" * 40 not in str(s.model_dump())


def test_production_requires_explicit_secrets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TASTEBUD_PSEUDONYM_KEY and TASTEBUD_FERNET_KEYS"):
        load_secrets(Settings(env="production", data_dir=tmp_path))
    assert not (tmp_path / "secrets").exists()
    key = Fernet.generate_key().decode()
    s = Settings(env="production", data_dir=tmp_path, pseudonym_key="k" * 64, fernet_keys=key)
    assert load_secrets(s).fernet_keys == (key.encode(),)
    assert s.should_auto_migrate() is False


def test_malformed_secrets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="malformed"):
        load_secrets(Settings(data_dir=tmp_path, pseudonym_key="k" * 64, fernet_keys="nope"))
    with pytest.raises(ConfigError, match="at least 32"):
        load_secrets(
            Settings(
                data_dir=tmp_path, pseudonym_key="short", fernet_keys=Fernet.generate_key().decode()
            )
        )


def test_several_fernet_keys(tmp_path: Path) -> None:
    keys = [Fernet.generate_key().decode() for _ in range(3)]
    s = Settings(data_dir=tmp_path, pseudonym_key="k" * 64, fernet_keys=" , ".join(keys))
    assert load_secrets(s).fernet_keys == tuple(k.encode() for k in keys)


# -- configs refuse nonsense (issue 16, point 11) ----------------------------------------------
SUB_CONFIGS: list[type[BaseModel]] = [GovernancePolicy, Schedule, RateLimits, ServingConfig]
ALL_CONFIGS: list[type[BaseModel]] = [*SUB_CONFIGS, Settings]


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=lambda c: c.__name__)
def test_every_numeric_setting_is_bounded(config: type[BaseModel]) -> None:
    assert numeric_fields(config)
    assert not unbounded_fields(config), "add Field(ge=..., gt=..., le=...) to these"
    assert config.model_config.get("frozen")
    if config is not Settings:  # Settings ignores unknown TASTEBUD_* variables (TASTEBUD_CONFIG)
        assert config.model_config.get("extra") == "forbid"
        with pytest.raises(ValidationError, match="no_such_setting"):
            config(no_such_setting=1)


@pytest.mark.parametrize(
    ("config", "field", "bad"),
    [(c, f, v) for c in ALL_CONFIGS for f, v in out_of_bounds(c)],
    ids=lambda x: x.__name__ if isinstance(x, type) else repr(x),
)
def test_a_setting_out_of_bounds_is_refused_naming_it(
    config: type[BaseModel], field: str, bad: object, tmp_path: Path
) -> None:
    extra = {"data_dir": tmp_path} if config is Settings else {}
    with pytest.raises(ValidationError) as info:
        config(**{field: bad}, **extra)
    assert {e["loc"][0] for e in info.value.errors()} == {field}


def test_log_level_and_retention_periods_are_checked(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path, log_level="debug").log_level == "DEBUG"
    with pytest.raises(ValidationError, match="log_level"):
        Settings(data_dir=tmp_path, log_level="loud")
    with pytest.raises(ValidationError, match="retention_days"):
        Settings(data_dir=tmp_path, retention_days={"*": 395, "page_load": 0})


def test_a_bad_setting_in_the_environment_is_named_with_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASTEBUD_SCHEDULE", '{"tick_seconds": 0, "tick_second": 5}')
    with pytest.raises(ValidationError) as info:
        Settings()
    error = ConfigError.from_validation(info.value, env_prefix="TASTEBUD_")
    assert error.message == (
        "invalid Settings: schedule.tick_seconds: Input should be greater than 0 (got 0) "
        "(TASTEBUD_SCHEDULE); schedule.tick_second: Extra inputs are not permitted "
        "(TASTEBUD_SCHEDULE)"
    )
    # No input value is echoed unless it is a number: a string might be a secret.
    monkeypatch.setenv("TASTEBUD_SCHEDULE", '{"tick_seconds": "s3cret"}')
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "s3cret" not in ConfigError.from_validation(info.value).message


def test_the_cli_names_a_bad_setting_without_a_traceback(tmp_path: Path) -> None:
    from test_cli import run

    r = run(["db", "upgrade"], tmp_path / "data", TASTEBUD_SCHEDULE='{"tick_seconds": 0}')
    assert r.returncode == 2
    assert "schedule.tick_seconds" in r.stderr and "TASTEBUD_SCHEDULE" in r.stderr
    assert "Traceback" not in r.stderr
