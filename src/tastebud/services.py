"""Wiring: build every domain object a process needs from :class:`Settings`, once.

The API app, the CLI and the tests all call :func:`build_services`; nothing reads globals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tastebud.apikeys import KeyManager
from tastebud.catalog import Catalog
from tastebud.config import Settings
from tastebud.errors import OptedOut
from tastebud.events.ingest import Ingestor
from tastebud.experiments import Experiments, ExperimentsView, ModelPin
from tastebud.features import OnlineFeatures
from tastebud.monitoring import get_logger
from tastebud.privacy import (
    ConsentLog,
    ConsentPolicy,
    FieldCipher,
    PersonalizationGate,
    PrivacyFilter,
    Pseudonymizer,
    Secrets,
    load_secrets,
)
from tastebud.realtime import RealtimeGuard, RealtimeState, make_realtime
from tastebud.registry import Registry
from tastebud.registry.predictor import PredictorArtifact, load_predictor
from tastebud.rights import ErasureContext, ExportContext
from tastebud.serving import (
    MODEL_NAME,
    CatalogView,
    ImpressionLog,
    ModelServer,
    PersonalizationEngine,
    load_recommender,
)
from tastebud.serving.predictions import Predictions, PredictionService
from tastebud.store import Store, make_engine, upgrade

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
    consent_log: ConsentLog
    ingestor: Ingestor
    keys: KeyManager
    catalog: Catalog
    realtime: RealtimeState
    online: OnlineFeatures
    predictions: PredictionService
    registry: Registry
    models: ModelServer
    engine: PersonalizationEngine
    experiments: Experiments

    def start(self) -> None:
        """Start the background work of a serving process: load the production models and
        poll for new ones, refresh the catalogue view, flush impressions, read the consent
        decisions and check them for changes in the background (requests never read them)."""
        gate = self.engine.personalization_allowed
        if isinstance(gate, PersonalizationGate):
            gate.start()  # reads every decision now, then checks in its own thread
        self.models.start()
        if self.engine.experiments is not None:
            self.engine.experiments.start()
        self.engine.catalog.start()
        if self.engine.impressions is not None:
            self.engine.impressions.start()

    def now_ms(self) -> int:
        """The current time in ms since the epoch."""
        return int(time.time() * 1000)

    def stop(self) -> None:
        """Stop the background work started by :meth:`start` (queued impressions are
        flushed first)."""
        if self.engine.impressions is not None:
            self.engine.impressions.stop()
        self.engine.catalog.stop()
        if self.engine.experiments is not None:
            self.engine.experiments.stop()
        self.models.stop()
        gate = self.engine.personalization_allowed
        if isinstance(gate, PersonalizationGate):
            gate.stop()

    def close(self) -> None:
        """Stop the background work; release database and Redis connections."""
        self.stop()
        self.store.dispose()
        self.engine.realtime.close()  # the guard's threads, then the backend

    def predict(self, user_key: str) -> Predictions:
        """The user's churn and conversion predictions (``PredictionService.predict``).

        Raises:
            OptedOut: the user opted out of personalization; predictions are profiling.
        """
        if not self.engine.personalization_allowed(user_key):
            raise OptedOut(
                "the user opted out of personalization: churn and conversion predictions are "
                "profiling and are not made for them"
            )
        return self.predictions.predict(user_key)

    def erasure_context(self) -> ErasureContext:
        """What an erasure works with, from these services."""
        return ErasureContext(
            self.store,
            self.realtime,
            self.registry,
            tombstone=lambda key: self.pseudonymizer.opaque("tombstone", key),
            forget_cached=self.engine.forget,
            reload_models=self.models.refresh,
        )

    def export_context(self) -> ExportContext:
        """What an export reads, from these services."""
        return ExportContext(self.store, self.realtime, self.registry, self.privacy, self.predict)


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
    consent_log = ConsentLog(store)
    catalog = Catalog(store, pseudonymizer, privacy)
    realtime = make_realtime(settings.redis_url)
    # The request paths (ingest, serving, profiles) call the real-time store under the budget.
    guarded = RealtimeGuard(
        realtime,
        budget_s=settings.serving.realtime_budget_ms / 1000,
        retry_s=settings.serving.realtime_retry_s,
    )
    ingestor = Ingestor(
        store,
        pseudonymizer,
        privacy,
        consent,
        max_future_skew_s=settings.max_future_skew_s,
        earliest_ms=int(settings.earliest_event_time.timestamp() * 1000),
        realtime=guarded,
        item_categories=catalog.items.categories,
        consent_log=consent_log,
    )
    keys = KeyManager(store, cache_seconds=settings.key_cache_seconds)
    _log.info("services ready", database=engine.dialect.name, consent_mode=settings.consent_mode)
    online = OnlineFeatures(store, guarded)
    registry = Registry(store, settings.resolved_artifact_dir())
    models = ModelServer(
        registry,
        {"recommender": load_recommender, "predictor": load_predictor},
        poll_seconds=settings.model_poll_seconds,
    )

    experiments = Experiments(store, registry)

    def resolve(pin: ModelPin) -> int | None:
        if pin.version is not None:
            return pin.version
        found = registry.resolve(MODEL_NAME, pin.alias or "")
        return None if found is None else found.version

    view = ExperimentsView(
        experiments.running,
        experiments.state,
        resolve,
        store.aliases_since,
        prepare=lambda versions: models.keep(MODEL_NAME, versions),
        poll_seconds=settings.experiment_poll_seconds,
    )

    def production_predictor(target: str) -> tuple[PredictorArtifact, int] | None:
        served = models.get(target)
        return None if served is None else (served.obj, served.version)

    return Services(
        settings,
        store,
        pseudonymizer,
        cipher,
        privacy,
        consent,
        consent_log,
        ingestor,
        keys,
        catalog,
        realtime,
        online,
        PredictionService(production_predictor, lambda key: online.features(key)[0]),
        registry,
        models,
        PersonalizationEngine(
            models,
            guarded,
            CatalogView(store, settings.serving.catalog_refresh_s),
            settings.serving,
            ImpressionLog(lambda batch: ingestor.ingest(batch, source="serve")),
            personalization_allowed=PersonalizationGate(consent_log, consent),
            experiments=view,
        ),
        experiments,
    )
