"""The MLflow model registry as mlrig uses it: versions plus the champion/challenger aliases."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mlrig.errors import ModelNotFoundError, TrackingError
from mlrig.tracking.tags import (
    CHAMPION_EVENT,
    RECORD,
    TAG_VALUE_MAX,
    RecordState,
    bounded,
    decode_champion_events,
    encode_champion_change,
    encode_champion_event,
)

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
                name,
                model_uri,
                run_id=run_id,
                tags=dict(tags) if tags else None,
                # an MLflow server refuses a models:/<id> source without its model id
                model_id=_logged_model_id(model_uri),
            )
    except MlflowException as exc:
        raise TrackingError(
            f"registered model {name!r}: cannot register {model_uri} ({exc})"
        ) from exc
    return str(mv.version)


def _logged_model_id(model_uri: str) -> str | None:
    """The logged model's id in a ``models:/<model_id>`` URI (not ``models:/name/version``)."""
    rest = model_uri.removeprefix("models:/")
    return rest if rest != model_uri and "/" not in rest and "@" not in rest else None


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


@dataclass(frozen=True)
class ChampionChange:
    """One move of the ``champion`` alias: by the gate, a promote or a rollback."""

    version: str
    previous: str | None
    action: str  # gate | promote | rollback
    by: str
    reason: str
    at: str  # ISO-8601 UTC


class ChampionMovedError(TrackingError):
    """The champion is no longer the version the caller compared against: moving the alias
    now would replace a model nobody weighed the new one against."""

    def __init__(self, name: str, expected: str | None, current: str | None) -> None:
        self.expected, self.current = expected, current
        super().__init__(
            f"model {name!r}: champion moved from {_v(expected)} to {_v(current)} since it was "
            "scored; not moved (run again to weigh against the current champion)"
        )


def _v(version: str | None) -> str:
    return "no champion" if version is None else f"version {version}"


ANY = "*"  # ``expected`` of a move that does not care which version is champion now


def champion_history(client: MlflowClient, name: str) -> list[ChampionChange]:
    """Every recorded move of ``champion``, oldest first (the old single-tag history, then
    one registered-model tag per move)."""
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(name).tags or {}
    except MlflowException as exc:
        raise ModelNotFoundError(f"model {name!r}: not in the registry") from exc
    fields = set(ChampionChange.__dataclass_fields__)
    return [
        ChampionChange(**{k: v for k, v in entry.items() if k in fields})
        for entry in decode_champion_events(tags)
        if fields <= set(entry)
    ]


def move_champion(
    client: MlflowClient,
    name: str,
    version: str,
    action: str,
    by: str,
    reason: str,
    expected: str | None = ANY,
) -> ChampionChange:
    """Point ``champion`` at ``version`` and record who moved it and why.

    A compare-and-set: ``expected`` is the champion the caller weighed ``version`` against
    (None: there was none); if the alias points elsewhere now, nothing moves and
    ChampionMovedError says so. Callers serialise moves of one model (a lease, see
    pipeline.runner.promotion_lease), so the check and the move are not interleaved with
    another move. The move's record (its own registered-model tag, values bounded to fit
    MLflow's 5,000-character column) is written BEFORE the alias moves: an alias never moves
    without its record; a crash in between leaves a record whose move did not happen, which
    the next move's ``previous`` shows.
    """
    import datetime as dt

    previous = alias_version(client, name, CHAMPION)
    if expected != ANY and previous != expected:
        raise ChampionMovedError(name, expected, previous)
    now = dt.datetime.now(dt.UTC)
    # Ordered by a sequence number taken under the caller's lease (clocks of two machines may
    # disagree), then time; the random suffix keeps two events distinct even without it.
    tags = client.get_registered_model(name).tags or {}
    seq = 1 + sum(1 for k in tags if k.startswith(CHAMPION_EVENT))
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    key = f"{CHAMPION_EVENT}{seq:08d}.{stamp}.{secrets.token_hex(3)}"
    change = ChampionChange(
        version, previous, action, bounded(by, 256), reason, now.isoformat(timespec="seconds")
    )
    recorded = _bounded_change(client, name, version, change, key)
    client.set_registered_model_tag(name, key, encode_champion_event(recorded.__dict__))
    set_alias(client, name, CHAMPION, version)
    for tag, value in encode_champion_change(
        action, recorded.by, recorded.reason, recorded.at
    ).items():
        client.set_model_version_tag(name, version, tag, value)
    if alias_version(client, name, CHALLENGER) == version:
        delete_alias(client, name, CHALLENGER)
    return change


_REASON_MAX = 3000  # leaves room for the other fields of one event within TAG_VALUE_MAX


def _bounded_change(
    client: MlflowClient, name: str, version: str, change: ChampionChange, key: str
) -> ChampionChange:
    """``change`` with a reason short enough that the encoded event (JSON escapes included)
    fits one tag value; a longer reason is kept whole as a text artifact of the version's
    run, and the tag points at it."""
    if len(change.reason) <= _REASON_MAX and _fits(change):
        return change
    pointer = ""
    run_id = client.get_model_version(name, version).run_id
    if run_id:
        path = f"champion/{key.removeprefix(CHAMPION_EVENT)}.txt"
        client.log_text(run_id, change.reason, path)
        pointer = f"artifact {path} of run {run_id}"
    return fit_reason(change, pointer)


def fit_reason(change: ChampionChange, pointer: str = "") -> ChampionChange:
    """``change`` with its reason cut (ending in ``pointer``) so the encoded event fits one tag
    value; JSON escapes may lengthen the text, so it shrinks until it does."""
    limit = _REASON_MAX
    while True:
        out = replace(change, reason=bounded(change.reason, limit, pointer))
        excess = len(encode_champion_event(out.__dict__)) - TAG_VALUE_MAX
        if excess <= 0 or limit <= 0:
            return out
        limit -= excess


def _fits(change: ChampionChange) -> bool:
    return len(encode_champion_event(change.__dict__)) <= TAG_VALUE_MAX


def record_state(tags: Mapping[str, str]) -> str:
    """``complete``, ``pending`` (its run died or is still writing it), ``failed``, or
    ``legacy`` (registered before mlrig marked records, or by hand) for a version's tags."""
    return tags.get(RECORD, "legacy")


def usable(tags: Mapping[str, str]) -> bool:
    """Whether a version with these tags may be champion or challenger: its record is complete
    (or it predates the mark)."""
    return record_state(tags) in (RecordState.COMPLETE, "legacy")


def mark_record(client: MlflowClient, name: str, version: str, state: str) -> None:
    client.set_model_version_tag(name, version, RECORD, state)


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


def close_orphans(
    client: MlflowClient, name: str, experiment_id: str, lease: str, keep: str | None = None
) -> tuple[list[str], list[str]]:
    """Close what a dead training of ``name`` left open: RUNNING runs written under ``lease``
    (except ``keep``, the run this process was handed) are marked KILLED, and versions of those
    runs whose record is still pending are marked failed (and lose the challenger alias).

    Only the holder of ``lease`` may call this: then no live process is writing a run under
    it, so anything still open with it belongs to a dead one. Runs written under another
    lease (another home sharing this MLflow store with its own prediction store) are left
    alone: their writer may be alive. Returns (run ids killed, versions failed).
    """
    from mlrig.tracking.tags import LEASE, MODEL

    def ours(run_id: str) -> bool:
        return client.get_run(run_id).data.tags.get(LEASE) == lease

    runs = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{MODEL}` = '{name}'",
        max_results=1000,
    )
    killed = [
        r.info.run_id for r in runs if r.info.run_id != keep and r.data.tags.get(LEASE) == lease
    ]
    for run_id in killed:
        client.set_terminated(run_id, "KILLED")
    failed: list[str] = []
    for mv in client.search_model_versions(f"name='{name}'"):
        if (mv.tags or {}).get(RECORD) != RecordState.PENDING or not mv.run_id:
            continue
        if mv.run_id in killed or (mv.run_id != keep and ours(mv.run_id)):
            if client.get_run(mv.run_id).info.status == "RUNNING":
                continue  # not ours to judge: a live writer elsewhere
            mark_record(client, name, str(mv.version), RecordState.FAILED)
            failed.append(str(mv.version))
            if alias_version(client, name, CHALLENGER) == str(mv.version):
                delete_alias(client, name, CHALLENGER)
    return killed, failed
