"""Settings from the environment and TOML, and the production secret requirements."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tastebud.config import Settings
from tastebud.errors import ConfigError
from tastebud.privacy import load_secrets


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
