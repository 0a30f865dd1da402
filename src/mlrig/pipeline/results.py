"""What each pipeline step hands to the next, and what one pipeline run reports.

Frozen dataclasses, no behaviour: the steps (steps.py) produce them, the composition
(compose.py) threads them through, the CLI renders ``RunResult``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlrig.data.schema import FeatureSchema
from mlrig.training.train import ModelSpec

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ProductionRows:
    """The labelled production rows a retrain uses, validated like the source: ``train`` joins
    the training rows, ``recent`` (the newest) is held out for the gate. Both are features
    then the target, oldest first; the ids say which logged predictions they were."""

    train: pd.DataFrame
    recent: pd.DataFrame
    train_ids: list[str]
    recent_ids: list[str]
    since: str | None  # ISO; None = every labelled row
    first_at: str | None
    last_at: str | None

    def summary(self) -> dict[str, Any]:
        return {
            "train_rows": len(self.train),
            "recent_rows": len(self.recent),
            "since": self.since,
            "first_at": self.first_at,
            "last_at": self.last_at,
        }


@dataclass(frozen=True)
class ValidatedData:
    frame: pd.DataFrame
    schema: FeatureSchema
    source: str
    digest: str
    note: str | None = None
    production: ProductionRows | None = None  # a retrain's labelled production rows


@dataclass(frozen=True)
class Prepared:
    """Training rows and the frozen evaluation rows (never trained on)."""

    x_train: pd.DataFrame
    y_train: pd.Series
    x_eval: pd.DataFrame
    y_eval: pd.Series
    eval_digest: str
    eval_run_id: str | None  # the run that stored the set; None = this run stores it
    eval_note: str
    x_recent: pd.DataFrame | None = None  # a retrain's recent production slice (never trained)
    y_recent: pd.Series | None = None

    @property
    def recent_rows(self) -> int:
        return 0 if self.x_recent is None else len(self.x_recent)

    @property
    def recent(self) -> tuple[pd.DataFrame, pd.Series] | None:
        """(x, y) of a non-empty recent slice, else None."""
        if self.x_recent is None or self.y_recent is None or not len(self.x_recent):
            return None
        return self.x_recent, self.y_recent


@dataclass(frozen=True)
class Fitted:
    """A fitted model and what to log about how it was found."""

    model: Any
    spec: ModelSpec
    extra_params: dict[str, Any] = field(default_factory=dict)
    extra_metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None  # an already open MLflow run (tune's parent run)


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    plots: dict[str, bytes]
    recent_metrics: dict[str, float] = field(default_factory=dict)  # on the recent slice


@dataclass(frozen=True)
class ChampionScore:
    """The current champion's score on the candidate's evaluation rows.

    ``version`` None: there is no champion. ``score`` None with a version: the champion could
    not be scored on these rows (``note`` says why)."""

    version: str | None
    score: float | None
    note: str
    recent_score: float | None = None  # on the recent production slice, when there is one


@dataclass(frozen=True)
class Registered:
    run_id: str
    experiment: str  # where the run landed (`mlflow run` may have chosen it)
    version: str


@dataclass(frozen=True)
class RunResult:
    """What one pipeline run did; ``as_dict`` is the ``--json`` summary."""

    mode: str
    task: str
    data_source: str
    data_digest: str
    rows: int
    train_rows: int
    test_rows: int
    eval_set: str
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    target: str
    params: dict[str, Any]
    metrics: dict[str, float]
    run_id: str
    experiment: str
    model_name: str
    version: str
    promoted: bool
    champion_version: str | None
    decision: dict[str, Any]
    tracking_uri: str
    notes: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)
    production: dict[str, Any] | None = None  # a retrain: the production rows it used

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = list(self.features)
        out["categorical"] = list(self.categorical)
        return out
