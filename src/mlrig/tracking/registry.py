"""The MLflow model registry as mlrig uses it: versions plus the champion/challenger aliases."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlrig.errors import ModelNotFoundError, TrackingError
from mlrig.tracking.tags import CHAMPION_HISTORY, encode_champion_change

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class VersionSummary:
    name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str | None
    created_ms: int
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def parse_model_ref(ref: str) -> tuple[str, str]:
    """``NAME@ALIAS`` or ``NAME/VERSION`` (also with a ``models:/`` prefix) → (name, alias|version)."""
    ref = ref.removeprefix("models:/")
    for sep in ("@", "/"):
        if sep in ref:
            name, _, which = ref.rpartition(sep)
            if name and which:
                return name, which
    raise ModelNotFoundError(f"model reference {ref!r}: expected NAME@ALIAS or NAME/VERSION")


def register_version(
    client: MlflowClient,
    name: str,
    model_uri: str,
    run_id: str,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Register ``model_uri`` as a new version of ``name`` (created if new), carrying ``tags``;
    returns the version.

    Tags given here are written with the version in one transaction; each later
    ``set_model_version_tag`` is a transaction of its own plus a read of the registered model
    (≈10–20 ms each, growing with the number of versions).
    """
    from mlflow.exceptions import MlflowException

    try:
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name)
        with _process_tracking_uri(client.tracking_uri):
            mv = client.create_model_version(
                name, model_uri, run_id=run_id, tags=dict(tags) if tags else None
            )
    except MlflowException as exc:
        raise TrackingError(
            f"registered model {name!r}: cannot register {model_uri} ({exc})"
        ) from exc
    return str(mv.version)


@contextlib.contextmanager
def _process_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to ``uri`` for one call, then restored together
    with ``MLFLOW_TRACKING_URI`` (which MLflow's setter also writes).

    The one place mlrig touches it: MLflow's SQL registry store resolves a ``models:/<model_id>``
    source through a client built from the process-wide URI (mlflow 3.17,
    ``store/model_registry/sqlalchemy_store.py``, marked TODO there), and no client API passes
    the store along. Registering the logged model's plain artifact location instead would work
    without this, but would drop the version's link to its logged model (``source``).
    """
    import os

    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    saved = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with _use_tracking_uri(uri):
            yield
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version ``alias`` points to, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def set_alias(client: MlflowClient, name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(name, alias, version)


def delete_alias(client: MlflowClient, name: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):
        client.delete_registered_model_alias(name, alias)


def resolve_version(client: MlflowClient, ref: str) -> tuple[str, str]:
    """(name, version) for ``NAME@ALIAS`` or ``NAME/VERSION``; ModelNotFoundError if absent."""
    mv = model_version(client, ref)
    return str(mv.name), str(mv.version)


def model_version(client: MlflowClient, ref: str) -> ModelVersion:
    """The registry entry ``NAME@ALIAS`` or ``NAME/VERSION`` names; ModelNotFoundError if absent."""
    from mlflow.exceptions import MlflowException

    name, which = parse_model_ref(ref)
    try:
        if which.isdigit():
            return client.get_model_version(name, which)
        return client.get_model_version_by_alias(name, which)
    except MlflowException as exc:
        raise ModelNotFoundError(
            f"model {name!r}: no {'version' if which.isdigit() else 'alias'} {which!r} in the "
            f"registry (run `mlrig run` first, or see `mlrig models list`)"
        ) from exc


def list_versions(
    client: MlflowClient, metric_keys: tuple[str, ...], name: str | None = None
) -> list[VersionSummary]:
    """Registered model versions (of ``name``, or all), newest first, with aliases, tags and
    the run metrics named in ``metric_keys``."""
    out: list[VersionSummary] = []
    models = client.search_registered_models(
        filter_string=f"name = '{name}'" if name is not None else None
    )
    for model in models:
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        for mv in client.search_model_versions(f"name='{model.name}'"):
            metrics: dict[str, float] = {}
            if mv.run_id:
                run_metrics = client.get_run(mv.run_id).data.metrics
                metrics = {k: run_metrics[k] for k in metric_keys if k in run_metrics}
            out.append(
                VersionSummary(
                    model.name,
                    str(mv.version),
                    tuple(sorted(aliases.get(str(mv.version), []))),
                    mv.run_id,
                    int(mv.creation_timestamp or 0),
                    metrics,
                    dict(mv.tags or {}),
                )
            )
    out.sort(key=lambda v: (v.name, -int(v.version)))
    return out


_HISTORY_KEEP = 40  # registered-model tag values are limited to a few kB


@dataclass(frozen=True)
class ChampionChange:
    """One move of the ``champion`` alias: by the gate, a promote or a rollback."""

    version: str
    previous: str | None
    action: str  # gate | promote | rollback
    by: str
    reason: str
    at: str  # ISO-8601 UTC


def champion_history(client: MlflowClient, name: str) -> list[ChampionChange]:
    """Every recorded move of ``champion``, oldest first."""
    import json

    from mlflow.exceptions import MlflowException

    try:
        raw = (client.get_registered_model(name).tags or {}).get(CHAMPION_HISTORY, "[]")
    except MlflowException as exc:
        raise ModelNotFoundError(f"model {name!r}: not in the registry") from exc
    return [ChampionChange(**entry) for entry in json.loads(raw)]


def move_champion(
    client: MlflowClient, name: str, version: str, action: str, by: str, reason: str
) -> ChampionChange:
    """Point ``champion`` at ``version`` and record who moved it and why (history + tags)."""
    import datetime as dt
    import json

    previous = alias_version(client, name, CHAMPION)
    change = ChampionChange(
        version, previous, action, by, reason, dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )
    history = [*champion_history(client, name), change][-_HISTORY_KEEP:]
    set_alias(client, name, CHAMPION, version)
    client.set_registered_model_tag(
        name, CHAMPION_HISTORY, json.dumps([c.__dict__ for c in history], separators=(",", ":"))
    )
    for key, value in encode_champion_change(action, by, reason, change.at).items():
        client.set_model_version_tag(name, version, key, value)
    if alias_version(client, name, CHALLENGER) == version:
        delete_alias(client, name, CHALLENGER)
    return change


def previous_champion(client: MlflowClient, name: str) -> str:
    """The version that was champion before the current one (what a rollback restores)."""
    current = alias_version(client, name, CHAMPION)
    if current is None:
        raise ModelNotFoundError(f"model {name!r}: has no champion to roll back")
    for change in reversed(champion_history(client, name)):
        if change.version == current and change.previous and change.previous != current:
            return change.previous
    raise ModelNotFoundError(
        f"model {name!r}: no earlier champion recorded before version {current}"
    )
