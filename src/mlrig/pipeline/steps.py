"""The training pipeline's steps as plain functions, and their composition.

``train_pipeline`` runs load → validate → split → train → evaluate → log/register → promote
through a ``call`` hook: a direct call in-process, or a Prefect task in flows.py. Both modes run
exactly this code, so their results and MLflow records are the same. Nothing is registered
until every earlier step has succeeded (including scoring the current champion).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from mlrig._version import __version__
from mlrig.config import Settings
from mlrig.data.ingest import LoadedTable, load_table
from mlrig.data.schema import FeatureSchema
from mlrig.data.split import Split, split_frame
from mlrig.data.validate import validate_frame
from mlrig.errors import TrackingError
from mlrig.training.evaluate import (
    GateDecision,
    RegressionMetrics,
    decide_promotion,
    regression_metrics,
)
from mlrig.training.train import ElasticNetSpec, fit_elasticnet

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")
StepCall = Callable[..., Any]
OnStep = Callable[[str], None]


@dataclass(frozen=True)
class ValidatedData:
    frame: pd.DataFrame
    schema: FeatureSchema
    source: str
    digest: str


@dataclass(frozen=True)
class ChampionScore:
    version: str | None
    score: float | None
    note: str


@dataclass(frozen=True)
class Registered:
    run_id: str
    experiment_id: str
    version: str


@dataclass(frozen=True)
class RunResult:
    """What one pipeline run did; ``as_dict`` is the ``--json`` summary."""

    mode: str
    data_source: str
    data_digest: str
    rows: int
    train_rows: int
    test_rows: int
    features: tuple[str, ...]
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
    step_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = list(self.features)
        return out


# --- the steps -------------------------------------------------------------------------------


def load_step(settings: Settings) -> LoadedTable:
    return load_table(settings.data.source, settings.data.separator)


def validate_step(table: LoadedTable, settings: Settings) -> ValidatedData:
    frame, schema = validate_frame(
        table.frame, table.source, settings.data.target, settings.data.features
    )
    return ValidatedData(frame, schema, table.source, table.digest)


def split_step(data: ValidatedData, settings: Settings) -> Split:
    return split_frame(data.frame, data.schema, settings.data.test_size, settings.data.split_seed)


def train_step(split: Split, settings: Settings) -> Any:
    t = settings.train
    return fit_elasticnet(split.x_train, split.y_train, ElasticNetSpec(t.alpha, t.l1_ratio, t.seed))


def evaluate_step(model: Any, split: Split) -> RegressionMetrics:
    return regression_metrics(split.y_test, model.predict(split.x_test))


def champion_step(settings: Settings, split: Split, schema: FeatureSchema) -> ChampionScore:
    """Score the current champion on the candidate's held-out rows (the fair comparison)."""
    from mlrig.tracking.loading import load_model
    from mlrig.tracking.registry import CHAMPION, alias_version
    from mlrig.tracking.store import open_client

    client = open_client(settings)
    name = settings.tracking.model_name
    if alias_version(client, name, CHAMPION) is None:
        return ChampionScore(None, None, "no champion yet")
    champion = load_model(client, f"{name}@{CHAMPION}")
    if champion.features and set(champion.features) != set(schema.features):
        return ChampionScore(
            champion.version, None, "champion was trained on different feature columns"
        )
    cols = list(champion.features or schema.features)
    metrics = regression_metrics(split.y_test, champion.estimator.predict(split.x_test[cols]))
    score = getattr(metrics, settings.tracking.champion_metric)
    return ChampionScore(champion.version, score, "scored on the same held-out split")


def gate_step(
    metrics: RegressionMetrics, champion: ChampionScore, settings: Settings
) -> GateDecision:
    metric = settings.tracking.champion_metric
    challenger = getattr(metrics, metric)
    if champion.version is not None and champion.score is None:
        return GateDecision(
            False, metric, challenger, None, settings.tracking.promotion_margin, champion.note
        )
    return decide_promotion(challenger, champion.score, metric, settings.tracking.promotion_margin)


def log_register_step(
    settings: Settings,
    data: ValidatedData,
    split: Split,
    model: Any,
    metrics: RegressionMetrics,
    decision: GateDecision,
) -> Registered:
    """Log the run and register its model as a new version tagged with the gate decision."""
    from mlrig.tracking.registry import CHALLENGER, register_version, set_alias
    from mlrig.tracking.runs import RunRecord, git_commit, log_training_run
    from mlrig.tracking.store import ensure_experiment, open_client

    client = open_client(settings)
    experiment_id = ensure_experiment(client, settings)
    gate_tags = _decision_tags(decision)
    tags = {
        "mlrig.version": __version__,
        "mlrig.data_digest": data.digest,
        "mlrig.data_source": data.source,
        **gate_tags,
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    t = settings.train
    params = {
        **ElasticNetSpec(t.alpha, t.l1_ratio, t.seed).params(),
        "target": data.schema.target,
        "test_size": settings.data.test_size,
        "split_seed": settings.data.split_seed,
    }
    metric_values = metrics.as_dict()
    if decision.champion is not None:
        metric_values[f"champion_{decision.metric}_same_split"] = decision.champion
    record = RunRecord(
        params=params,
        metrics=metric_values,
        tags=tags,
        train_frame=split.x_train.assign(**{data.schema.target: split.y_train}),
        eval_frame=split.x_test.assign(**{data.schema.target: split.y_test}),
        data_source=data.source,
        target=data.schema.target,
        x_example=split.x_train,
        y_example=model.predict(split.x_train.head(5)),
    )
    run = log_training_run(client, experiment_id, record, model, run_name=None)
    name = settings.tracking.model_name
    version = register_version(client, name, run.model_uri, run.run_id)
    for key, value in gate_tags.items():
        client.set_model_version_tag(name, version, key, value)
    set_alias(client, name, CHALLENGER, version)
    return Registered(run.run_id, experiment_id, version)


def promote_step(settings: Settings, registered: Registered, decision: GateDecision) -> bool:
    """Move ``champion`` to the new version when the gate said so; returns whether it moved."""
    from mlrig.tracking.registry import CHALLENGER, CHAMPION, delete_alias, set_alias
    from mlrig.tracking.store import open_client

    if not decision.promote:
        return False
    client = open_client(settings)
    name = settings.tracking.model_name
    set_alias(client, name, CHAMPION, registered.version)
    delete_alias(client, name, CHALLENGER)
    return True


def _decision_tags(decision: GateDecision) -> dict[str, str]:
    return {
        "mlrig.gate.promote": str(decision.promote).lower(),
        "mlrig.gate.metric": decision.metric,
        "mlrig.gate.challenger": f"{decision.challenger:.6g}",
        "mlrig.gate.champion": "" if decision.champion is None else f"{decision.champion:.6g}",
        "mlrig.gate.reason": decision.reason,
    }


# --- the composition -------------------------------------------------------------------------


def _direct(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


def train_pipeline(
    settings: Settings, mode: str = "local", call: StepCall = _direct, on_step: OnStep | None = None
) -> RunResult:
    """Run every step through ``call``; ``on_step`` hears each step's name before it starts."""
    seconds: dict[str, float] = {}

    def step(label: str, fn: Callable[..., T], *args: Any) -> T:
        if on_step:
            on_step(label)
        t0 = time.perf_counter()
        out: T = call(fn, *args)
        seconds[label] = round(time.perf_counter() - t0, 3)
        return out

    table = step("load", load_step, settings)
    data = step("validate", validate_step, table, settings)
    split = step("split", split_step, data, settings)
    model = step("train", train_step, split, settings)
    metrics = step("evaluate", evaluate_step, model, split)
    champion = step("score champion", champion_step, settings, split, data.schema)
    decision = gate_step(metrics, champion, settings)
    registered = step(
        "log + register", log_register_step, settings, data, split, model, metrics, decision
    )
    promoted = step("promote", promote_step, settings, registered, decision)
    if promoted is not decision.promote:
        raise TrackingError(f"model {settings.tracking.model_name!r}: promotion did not apply")
    t = settings.train
    return RunResult(
        mode=mode,
        data_source=data.source,
        data_digest=data.digest,
        rows=len(data.frame),
        train_rows=len(split.x_train),
        test_rows=len(split.x_test),
        features=data.schema.features,
        target=data.schema.target,
        params={"alpha": t.alpha, "l1_ratio": t.l1_ratio},
        metrics=metrics.as_dict(),
        run_id=registered.run_id,
        experiment=settings.tracking.experiment,
        model_name=settings.tracking.model_name,
        version=registered.version,
        promoted=promoted,
        champion_version=registered.version if promoted else champion.version,
        decision=asdict(decision),
        tracking_uri=settings.tracking_uri,
        step_seconds=seconds,
    )
