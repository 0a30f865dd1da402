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
class ValidatedData:
    frame: pd.DataFrame
    schema: FeatureSchema
    source: str
    digest: str
    note: str | None = None


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


@dataclass(frozen=True)
class ChampionScore:
    """The current champion's score on the candidate's evaluation rows.

    ``version`` None: there is no champion. ``score`` None with a version: the champion could
    not be scored on these rows (``note`` says why)."""

    version: str | None
    score: float | None
    note: str


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

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = list(self.features)
        out["categorical"] = list(self.categorical)
        return out
