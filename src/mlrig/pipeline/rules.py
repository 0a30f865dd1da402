"""The pipeline's decisions as pure functions: which rows train, whether a stored evaluation
set still fits the data, what the gate weighs, which model to fit and how a decision is tagged.

No MLflow calls, no files, no settings loading: the steps (steps.py) fetch and store, these decide,
and tests/unit/pipeline checks them on small frames.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, replace
from typing import TYPE_CHECKING

from mlrig.tracking.tags import encode_gate
from mlrig.training.evaluate import (
    RECENT,
    GateDecision,
    SetScores,
    decide_promotion,
    governing_set,
)
from mlrig.training.families import default_family, family, resolve_params
from mlrig.training.train import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

    from mlrig.config import TrainSettings
    from mlrig.data.schema import Task
    from mlrig.pipeline.results import ChampionScore


def row_hashes(frame: pd.DataFrame) -> pd.Series:
    """One 64-bit hash per row, of its values only (the index does not count), so equal rows
    hash equal wherever they sit."""
    import pandas as pd

    return pd.util.hash_pandas_object(frame, index=False)


def digest(frame: pd.DataFrame) -> str:
    """16 hex characters naming ``frame``'s rows in order: the same rows give the same digest
    in every process, so a run's tags say which evaluation set it was scored on."""
    return hashlib.sha256(row_hashes(frame).to_numpy().tobytes()).hexdigest()[:16]


def training_rows(
    frame: pd.DataFrame, eval_frame: pd.DataFrame, features: list[str] | None = None
) -> pd.DataFrame:
    """The rows of ``frame`` that are not evaluation rows, duplicates included.

    Every row whose ``features`` (None: all columns) equal an evaluation row's is dropped: a
    copy left in training would leak the row and flatter the score, and keying on the features
    alone keeps a relabelled copy (same features, another target) out as well.
    ``eval_frame`` must have ``frame``'s columns in the same order.
    """
    cols = list(frame.columns) if features is None else features
    return frame[~row_hashes(frame[cols]).isin(set(row_hashes(eval_frame[cols])))]


def relabelled(
    stored: pd.DataFrame, current: pd.DataFrame, features: list[str], target: str
) -> int:
    """How many stored evaluation rows the current data labels otherwise: rows whose features
    appear in ``current`` but never with the stored target (e.g. a changed positive
    threshold). Rows absent from ``current`` do not count: the set may outlive its source."""
    by_features = set(row_hashes(current[features]))
    labelled = set(row_hashes(current[[*features, target]]))
    seen = row_hashes(stored[features]).isin(by_features)
    same = row_hashes(stored[[*features, target]]).isin(labelled)
    return int((seen & ~same).sum())


def compatible(stored: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame | None:
    """The stored evaluation rows typed like ``current``, or None if they cannot be.

    A set with other columns (or another column order), or values that cannot be cast to the
    current types, belongs to other data: the caller then draws a new set.
    """
    if list(stored.columns) != list(current.columns):
        return None
    try:
        return stored.astype(current.dtypes.to_dict())
    except (TypeError, ValueError):
        return None


def gate_decision(
    sets: list[SetScores],
    champion: ChampionScore,
    metric: str,
    margin: float,
    rule: str | None = None,
    min_recent: int = 100,
) -> GateDecision:
    """The gate's verdict from both models' ``metric`` on every set (the frozen set first).

    ``rule`` (see ``governing_set``; None: not a retrain, so no recent slice) picks the set
    that decides; every set is reported. A
    champion that exists but could not be scored on these rows is never replaced by the gate
    (it says why in ``champion.note``): promoting blind would compare nothing. Neither is it
    replaced when the deciding set is empty. Otherwise ``decide_promotion`` weighs the two
    scores (no champion: promote).
    """
    recent_rows = next((s.rows for s in sets if s.name == RECENT), 0)
    governs, why = governing_set(rule, recent_rows, min_recent)
    chosen = next((s for s in sets if s.name == governs and s.rows), None)
    frozen = sets[0]
    keep = None
    if champion.version is not None and champion.score is None:
        keep = champion.note
    elif chosen is None and champion.version is not None:
        keep = f"the {governs} set has no rows to compare on"
    if keep is not None:
        return GateDecision(
            False, metric, frozen.challenger, None, margin, keep, governs, why, tuple(sets)
        )
    chosen = chosen or frozen
    decided = decide_promotion(chosen.challenger, chosen.champion, metric, margin)
    reason = decided.reason
    if champion.version is not None:
        reason += f" on the {chosen.name} set ({chosen.rows} rows)"
    return replace(
        decided,
        reason=reason,
        governed_by=governs,
        rule=why,
        sets=tuple(sets),
    )


def split_recent(frame: pd.DataFrame, share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(older, recent): the newest ``share`` of ``frame``'s rows (oldest first) held out.

    The gate scores both models on the recent rows, so no copy of one may train: an older row
    equal to a recent one goes with the recent rows (white wine alone repeats 937 rows).
    """
    n_recent = round(len(frame) * share)
    if n_recent == 0:
        return frame, frame.iloc[:0]
    recent = frame.iloc[len(frame) - n_recent :]
    older = frame.iloc[: len(frame) - n_recent]
    return older[~row_hashes(older).isin(set(row_hashes(recent)))], recent


def model_spec(train: TrainSettings, task: Task) -> ModelSpec:
    """The configured family and hyperparameters for ``task``.

    ``train.alpha``/``train.l1_ratio`` are shorthands, used only by families that have these
    parameters; ``train.params`` wins over them. Raises ConfigError for an unknown family or
    one that cannot do ``task``.
    """
    name = train.model if train.model != "auto" else default_family(task)
    fam = family(name, task)
    shorthands = {"alpha": train.alpha, "l1_ratio": train.l1_ratio}
    given = {k: v for k, v in shorthands.items() if v is not None and k in fam.defaults}
    return ModelSpec(fam.name, resolve_params(fam, {**given, **train.params}), train.seed)


def decision_tags(decision: GateDecision) -> dict[str, str]:
    """The gate decision as MLflow tags (run and model version), numbers as short text."""
    d = decision
    return encode_gate(
        d.promote,
        d.metric,
        d.challenger,
        d.champion,
        d.margin,
        d.reason,
        d.governed_by,
        d.rule,
        [asdict(s) for s in d.sets],
    )
