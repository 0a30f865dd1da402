"""Choose how a pipeline runs: through Prefect when an API is configured, else in-process."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from mlrig.config import Settings
from mlrig.errors import BusyError
from mlrig.pipeline.compose import OnStep, Trainer, train_pipeline
from mlrig.pipeline.results import RunResult
from mlrig.pipeline.steps import train_step


def choose_mode(settings: Settings) -> str:
    """``prefect`` when asked to, or when ``PREFECT_API_URL`` is set; ``local`` otherwise.

    A one-off run never starts Prefect's ephemeral server (+12–20 s, shared/FACTS.md).
    """
    wanted = settings.pipeline.orchestrator
    if wanted == "auto":
        return "prefect" if os.environ.get("PREFECT_API_URL") else "local"
    return wanted


def flow_overrides(settings: Settings) -> dict[str, Any]:
    """``settings`` as flow parameters (JSON, nested like the config file), for the Prefect UI.

    Prefect stores and shows parameters, so tokens are left out and URL passwords masked; the
    in-process run uses ``settings`` itself (flows.in_process)."""
    from mlrig.tracking.store import redact

    out = settings.model_dump(
        mode="json", exclude={"home": True, "serving": {"admin_token", "predict_token"}}
    )
    for section, key in _URLS:
        if out[section][key]:
            out[section][key] = redact(out[section][key])
    return out


_URLS = (
    ("data", "source"),
    ("tracking", "uri"),
    ("tracking", "registry_uri"),
    ("tune", "storage"),
    ("predictions", "url"),
)


@contextlib.contextmanager
def training_lease(settings: Settings, purpose: str) -> Iterator[None]:
    """Hold the model's ``train:`` lease in the prediction store for the block: never two
    trainings of one model at once (a loop's retrain takes the same lease). It lapses when its
    holder dies. Raises BusyError naming the holder while another process has it."""
    from mlrig.predictions.locks import LockInfo, acquire, train_lock
    from mlrig.predictions.store import PredictionStore

    model = settings.tracking.model_name
    store = PredictionStore(settings.predictions_url)
    try:
        store.create_schema()
        lease = acquire(store, train_lock(model), purpose, settings.loop.lock_ttl)
        if isinstance(lease, LockInfo):
            raise BusyError(f"model {model!r}: not training, {lease.describe()}")
        with lease:
            yield
    finally:
        store.close()


PROMOTION_WAIT_S = 60.0  # a move takes well under a second; a holder this slow is stuck or dead
_SQL_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql")


@contextlib.contextmanager
def promotion_lease(settings: Settings, model: str, purpose: str) -> Iterator[None]:
    """Hold the model's ``promote:`` lease for the block: the check that the champion is still
    the one a challenger was weighed against, and the move, happen with no other move of the
    model in between (a gate, ``mlrig models promote`` or ``rollback``).

    The lease lives where the registry does when that is a database (a ``locks`` table beside
    MLflow's), so every process moving this model's alias shares it, even homes or machines
    with separate prediction stores; behind an MLflow server, in the prediction store. Waits
    up to PROMOTION_WAIT_S for a holder, then raises BusyError naming it; a dead holder's
    lease lapses as a training lease does."""
    import time

    from mlrig.predictions.locks import LockInfo, acquire
    from mlrig.predictions.store import PredictionStore

    url = settings.registry_uri
    store = _registry_locks(url) if url.startswith(_SQL_SCHEMES) else None
    store = store or PredictionStore(settings.predictions_url)
    try:
        store.create_schema()
        deadline = time.monotonic() + PROMOTION_WAIT_S
        while True:
            lease = acquire(store, f"promote:{model}", purpose, settings.loop.lock_ttl)
            if not isinstance(lease, LockInfo):
                break
            if time.monotonic() > deadline:
                raise BusyError(f"model {model!r}: champion not moved, {lease.describe()}")
            time.sleep(0.2)
        with lease:
            yield
    finally:
        store.close()


def _registry_locks(url: str) -> Any:
    """A PredictionStore holding only the ``locks`` table, in the registry's own database:
    none of the prediction tables, and none of the prediction store's SQLite settings (WAL
    would change how MLflow's file is journalled). None when that database has no registry
    yet. Defined here, not at import: the store
    module pulls in SQLAlchemy and NumPy."""
    import sqlalchemy as sa

    from mlrig.errors import StoreUnavailableError
    from mlrig.predictions.store import PredictionStore, locks

    class RegistryLocks(PredictionStore):
        def __init__(self, url: str) -> None:
            self.url = url
            args = {"timeout": 30} if url.startswith("sqlite:") else {}
            self.engine = sa.create_engine(url, connect_args=args)

        def create_schema(self) -> None:
            try:
                locks.create(self.engine, checkfirst=True)
            except sa.exc.SQLAlchemyError as exc:
                if not sa.inspect(self.engine).has_table("locks"):  # not made by a rival
                    raise StoreUnavailableError(f"registry locks table: {exc}") from exc

    store = RegistryLocks(url)
    try:
        # never the first table of a database MLflow has not set up: MLflow would take a
        # non-empty database for its own and refuse its schema
        ready = sa.inspect(store.engine).has_table("registered_models")
    except sa.exc.SQLAlchemyError:
        ready = False
    if not ready:
        store.close()
        return None
    return store


def run_training(
    settings: Settings, on_step: OnStep | None = None, trainer: Trainer = train_step
) -> RunResult:
    """Run the training pipeline once under the model's training lease; in prefect mode as a
    run of ``flows.train_flow``. Raises BusyError while another process trains the model."""
    name = trainer.__name__.removesuffix("_step")
    if choose_mode(settings) == "prefect":
        from mlrig.pipeline.flows import Skipped, in_process, train_flow

        with in_process(settings, on_step, trainer):
            out = train_flow(
                home=str(settings.home_dir), overrides=flow_overrides(settings), trainer=name
            )
        if isinstance(out, Skipped):
            raise BusyError(out.reason)
        return out
    with training_lease(settings, f"mlrig {'tune' if name == 'tune' else 'run'}"):
        return train_pipeline(settings, mode="local", on_step=on_step, trainer=trainer)
