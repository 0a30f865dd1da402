"""Every MLflow tag mlrig writes: its name, and how its value is encoded and read back.

The pipeline writes these tags on runs, model versions and registered models; the CLI, the
registry helpers and monitoring read them. Both sides go through this module, so a name or an
encoding changes in one place. Values are plain text (MLflow tags are strings); callers pass
plain values, never mlrig's own decision objects, so tracking does not depend on training.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# --- a training run (and, for TASK and the gate, its model version) ---------------------------
VERSION = "mlrig.version"  # the mlrig release that logged the run
TASK = "mlrig.task"  # regression | classification
DATA_DIGEST = "mlrig.data_digest"
DATA_SOURCE = "mlrig.data_source"

# --- the frozen evaluation set (run tags, and registered-model tags naming the set) -----------
EVAL_SET_DIGEST = "mlrig.eval_set.digest"
EVAL_SET_RUN_ID = "mlrig.eval_set.run_id"
EVAL_SET_THIS_RUN = "this run"  # EVAL_SET_RUN_ID of the run that stored the set itself
# how the set's target was labelled (target, task, positive threshold): a set labelled otherwise
# is stale, so the next run draws a new one instead of scoring on old labels
EVAL_SET_LABELLING = "mlrig.eval_set.labelling"

# --- completeness of a version's record (model-version tag) ----------------------------------
# Written "pending" with the version (one transaction), "complete" once every tag the gate
# writes is in, "failed" when a step after registration failed. A version without the tag was
# registered before it existed (or by hand) and reads as before.
RECORD = "mlrig.record"


class RecordState(StrEnum):
    PENDING = "pending"
    COMPLETE = "complete"
    FAILED = "failed"


# --- the champion gate (run and model-version tags) ------------------------------------------
GATE_PROMOTE = "mlrig.gate.promote"
GATE_METRIC = "mlrig.gate.metric"
GATE_CHALLENGER = "mlrig.gate.challenger"
GATE_CHAMPION = "mlrig.gate.champion"
GATE_MARGIN = "mlrig.gate.margin"
GATE_REASON = "mlrig.gate.reason"
GATE_GOVERNED_BY = "mlrig.gate.governed_by"  # frozen | recent
GATE_RULE = "mlrig.gate.rule"
GATE_SETS = "mlrig.gate.sets"  # JSON list: both models' scores on every set

# --- champion moves (registered-model tag, and model-version tags of the new champion) -------
CHAMPION_HISTORY = "mlrig.champion_history"  # JSON list, oldest first; read only (old models)
# + sequence.time.random (sorts in move order): one tag per move, never rewritten
CHAMPION_EVENT = "mlrig.champion_event."
_CHAMPION_CHANGE = "mlrig.champion."  # + action | by | reason | at
# MLflow's tag value columns hold 5,000 characters on PostgreSQL and MySQL (SQLite: unlimited),
# so every value mlrig writes that could grow stays under this.
TAG_VALUE_MAX = 5000

# --- tuning (the parent run, and each nested trial run) --------------------------------------
STUDY = "mlrig.study"
TUNED_FAMILIES = "mlrig.tuned_families"
TRIAL = "mlrig.trial"  # the Optuna trial number
TRIAL_STATE = "mlrig.state"  # Optuna's: COMPLETE | PRUNED | FAIL

# --- monitoring runs (written by mlrig.monitoring.monitor) -----------------------------------
MODEL = "mlrig.model"
# on training runs and tune parents: the training lease (store, name) its writer held, so a
# later holder of the same lease knows a RUNNING run with it belongs to a dead process
LEASE = "mlrig.lease"
MODEL_VERSION = "mlrig.model_version"
MONITORING_VERDICT = "mlrig.monitoring.verdict"

# --- closed-loop passes (written by mlrig.pipeline.loop; MODEL names the model) ---------------
LOOP_TRIGGER = "mlrig.loop.trigger"  # manual | schedule
LOOP_OUTCOME = "mlrig.loop.outcome"  # no_retrain | promoted | kept | failed | busy


def encode_run(
    version: str,
    task: str,
    data_digest: str,
    data_source: str,
    eval_digest: str,
    eval_run_id: str | None,
) -> dict[str, str]:
    """Tags of a training run: what logged it, on which data, scored on which evaluation set
    (``eval_run_id`` None: this run stored the set)."""
    return {
        VERSION: version,
        TASK: task,
        DATA_DIGEST: data_digest,
        DATA_SOURCE: data_source,
        EVAL_SET_DIGEST: eval_digest,
        EVAL_SET_RUN_ID: eval_run_id or EVAL_SET_THIS_RUN,
    }


@dataclass(frozen=True)
class GateTags:
    """The gate decision as read back from a run or model version."""

    promote: bool
    metric: str
    challenger: float
    champion: float | None  # None: there was no champion to compare with
    margin: float
    reason: str
    governed_by: str = "frozen"  # versions gated before the recent slice existed: frozen
    rule: str = ""
    sets: tuple[dict[str, Any], ...] = ()  # {name, rows, challenger, champion}


def encode_gate(
    promote: bool,
    metric: str,
    challenger: float,
    champion: float | None,
    margin: float,
    reason: str,
    governed_by: str = "frozen",
    rule: str = "",
    sets: Sequence[Mapping[str, Any]] = (),
) -> dict[str, str]:
    """The gate decision as tags; scores with 6 significant digits (the run's metrics keep
    them exactly), an empty champion when there was none."""
    return {
        GATE_PROMOTE: str(promote).lower(),
        GATE_METRIC: metric,
        GATE_CHALLENGER: f"{challenger:.6g}",
        GATE_CHAMPION: "" if champion is None else f"{champion:.6g}",
        GATE_MARGIN: f"{margin:g}",
        GATE_REASON: reason,
        GATE_GOVERNED_BY: governed_by,
        GATE_RULE: rule,
        GATE_SETS: json.dumps([{k: _short(v) for k, v in s.items()} for s in sets]),
    }


def _short(value: Any) -> Any:
    return float(f"{value:.6g}") if isinstance(value, float) else value


def decode_gate(tags: Mapping[str, str]) -> GateTags | None:
    """The gate decision in ``tags``, or None when they carry none (a version registered
    by hand, or before the gate existed). A number that does not parse reads as NaN."""
    if GATE_METRIC not in tags:
        return None
    champion = tags.get(GATE_CHAMPION, "")
    return GateTags(
        promote=tags.get(GATE_PROMOTE) == "true",
        metric=tags[GATE_METRIC],
        challenger=_number(tags.get(GATE_CHALLENGER, "")),
        champion=_number(champion) if champion else None,
        margin=_number(tags.get(GATE_MARGIN, "")),
        reason=tags.get(GATE_REASON, ""),
        governed_by=tags.get(GATE_GOVERNED_BY) or "frozen",
        rule=tags.get(GATE_RULE, ""),
        sets=tuple(_json_list(tags.get(GATE_SETS, ""))),
    )


def _json_list(text: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def encode_champion_change(action: str, by: str, reason: str, at: str) -> dict[str, str]:
    """Tags of the version that just became champion: how (gate | promote | rollback), by
    whom, why (cut to fit a tag value) and when (ISO-8601 UTC)."""
    return {
        _CHAMPION_CHANGE + "action": action,
        _CHAMPION_CHANGE + "by": bounded(by, 256),
        _CHAMPION_CHANGE + "reason": bounded(reason, TAG_VALUE_MAX),
        _CHAMPION_CHANGE + "at": at,
    }


def bounded(text: str, limit: int, pointer: str = "") -> str:
    """``text`` when it fits in ``limit`` characters, else its start, an ellipsis and
    ``pointer`` (where the full text is), within ``limit``."""
    if len(text) <= limit:
        return text
    tail = f"… [{len(text)} characters{'; full text: ' + pointer if pointer else ''}]"
    return text[: max(0, limit - len(tail))] + tail


def encode_champion_event(entry: Mapping[str, Any]) -> str:
    """One champion move as a tag value (compact JSON); the caller bounds the reason."""
    return json.dumps(dict(entry), separators=(",", ":"), ensure_ascii=False)


def decode_champion_events(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every champion move recorded in registered-model ``tags``: the old single history tag
    first (its entries are older), then one tag per move in key order (sequence number,
    time, random suffix). Entries that do not parse are skipped, not fatal: the history is a record, and
    one bad value must not hide the rest."""
    out = _json_list(tags.get(CHAMPION_HISTORY, ""))
    for key in sorted(k for k in tags if k.startswith(CHAMPION_EVENT)):
        try:
            entry = json.loads(tags[key])
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def encode_labelling(target: str, task: str, positive_threshold: float | None) -> str:
    """How an evaluation set's target was labelled, as a tag value compared verbatim."""
    return json.dumps(
        {"target": target, "task": task, "positive_threshold": positive_threshold},
        sort_keys=True,
    )


def encode_study(
    study: str, families: list[str], model: str | None = None, lease: str | None = None
) -> dict[str, str]:
    """Tags of a tuning parent run: the Optuna study, the families it searched, and the
    registered model and training lease it runs under (so the next holder of that lease can
    close it if its process died)."""
    out = {STUDY: study, TUNED_FAMILIES: ",".join(families)}
    if model and lease:
        out.update({MODEL: model, LEASE: lease})
    return out


def encode_trial(number: int, state: str) -> dict[str, str]:
    """mlrig's tags of one nested trial run (MLflow's own tags are added by the writer)."""
    return {TRIAL: str(number), TRIAL_STATE: state}
