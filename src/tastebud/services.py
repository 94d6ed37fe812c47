"""Wiring: build every domain object a process needs from :class:`Settings`, once.

The API app, the CLI and the tests all call :func:`build_services`; nothing reads globals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tastebud.apikeys import KeyManager
from tastebud.catalog import Catalog
from tastebud.config import Settings
from tastebud.events.ingest import Ingestor
from tastebud.features import OnlineFeatures
from tastebud.monitoring import get_logger
from tastebud.privacy import (
    ConsentPolicy,
    FieldCipher,
    PrivacyFilter,
    Pseudonymizer,
    Secrets,
    load_secrets,
)
from tastebud.realtime import RealtimeState, make_realtime
from tastebud.store import Store, make_engine, upgrade
from tastebud.training.predictors import PredictionService

__all__ = ["Services", "build_services"]

_log = get_logger(__name__)


@dataclass
class Services:
    """Everything a Tastebud process works with."""

    settings: Settings
    store: Store
    pseudonymizer: Pseudonymizer
    cipher: FieldCipher
    privacy: PrivacyFilter
    consent: ConsentPolicy
    ingestor: Ingestor
    keys: KeyManager
    catalog: Catalog
    realtime: RealtimeState
    online: OnlineFeatures
    predictions: PredictionService

    def now_ms(self) -> int:
        """The current time in ms since the epoch."""
        return int(time.time() * 1000)

    def close(self) -> None:
        """Release database and Redis connections."""
        self.store.dispose()
        self.realtime.close()


def build_services(
    settings: Settings, *, migrate: bool | None = None, secrets: Secrets | None = None
) -> Services:
    """Connect to the configured stores and assemble the domain objects.

    Args:
        settings: The deployment's settings.
        migrate: Run database migrations first (default: ``settings.should_auto_migrate()``).
        secrets: Key material; loaded (or generated in development) from settings if omitted.
    """
    secrets = secrets or load_secrets(settings)
    engine = make_engine(
        settings.resolved_database_url(), sqlite_synchronous=settings.sqlite_synchronous
    )
    if settings.should_auto_migrate() if migrate is None else migrate:
        upgrade(engine)
    store = Store(engine)
    pseudonymizer = Pseudonymizer(secrets.pseudonym_key)
    cipher = FieldCipher(secrets.fernet_keys)
    privacy = PrivacyFilter(settings.sensitive_fields, cipher)
    consent = ConsentPolicy(settings.consent_mode)
    realtime = make_realtime(settings.redis_url)
    ingestor = Ingestor(
        store,
        pseudonymizer,
        privacy,
        consent,
        max_future_skew_s=settings.max_future_skew_s,
        realtime=realtime,
    )
    keys = KeyManager(store, cache_seconds=settings.key_cache_seconds)
    _log.info("services ready", database=engine.dialect.name, consent_mode=settings.consent_mode)
    catalog = Catalog(store, pseudonymizer, privacy)
    online = OnlineFeatures(store, realtime)
    return Services(
        settings,
        store,
        pseudonymizer,
        cipher,
        privacy,
        consent,
        ingestor,
        keys,
        catalog,
        realtime,
        online,
        PredictionService(settings.resolved_artifact_dir(), lambda key: online.features(key)[0]),
    )
