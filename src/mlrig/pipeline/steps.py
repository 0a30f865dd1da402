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
from mlrig.data.split import split_frame
from mlrig.data.validate import Contract, validate_frame
from mlrig.errors import TrackingError
from mlrig.training.evaluate import GateDecision, decide_promotion, gate_metric
from mlrig.training.families import default_family, family, resolve_params
from mlrig.training.train import ModelSpec, fit_model, score_model

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


# --- the steps -------------------------------------------------------------------------------


def load_step(settings: Settings) -> LoadedTable:
    return load_table(settings.data.source, settings.data.separator)


def validate_step(table: LoadedTable, settings: Settings) -> ValidatedData:
    d = settings.data
    contract = Contract(
        d.target, d.features, d.categorical, list(d.drop), d.task, d.positive_threshold
    )
    checked = validate_frame(table.frame, table.source, contract)
    # fail on a bad model family or metric before any training
    model_spec(settings, checked.schema)
    gate_metric(checked.schema.task, settings.tracking.champion_metric)
    return ValidatedData(checked.frame, checked.schema, table.source, table.digest, checked.note)


def model_spec(settings: Settings, schema: FeatureSchema) -> ModelSpec:
    """The configured family and hyperparameters (``train.alpha``/``l1_ratio`` are shorthands)."""
    t = settings.train
    name = t.model if t.model != "auto" else default_family(schema.task)
    fam = family(name, schema.task)
    given = {k: v for k, v in (("alpha", t.alpha), ("l1_ratio", t.l1_ratio)) if v is not None}
    given = {k: v for k, v in given.items() if k in fam.defaults}
    return ModelSpec(fam.name, resolve_params(fam, {**given, **t.params}), t.seed)


def prepare_step(data: ValidatedData, settings: Settings) -> Prepared:
    """Split off evaluation rows, or reuse the model's frozen evaluation set when it has one
    (then every row not in it is a training row)."""
    from mlrig.tracking.evalset import load_eval_set
    from mlrig.tracking.store import open_client

    schema = data.schema
    features, target = list(schema.features), schema.target
    stored = load_eval_set(open_client(settings), settings.tracking.model_name)
    frozen = _compatible(stored.frame, data.frame) if stored is not None else None
    if stored is not None and frozen is not None:
        note = f"frozen evaluation set of run {stored.run_id} ({len(frozen)} rows)"
        digest, run_id = stored.digest, stored.run_id
    else:
        split = split_frame(
            data.frame,
            schema,
            settings.data.test_size,
            settings.data.split_seed,
            stratify=schema.task == "classification",
        )
        frozen = split.x_test.assign(**{target: split.y_test})
        note = "new evaluation set (stored with this run)"
        if stored is not None:
            note += "; the stored one has other columns or types: " + ", ".join(
                f"{c} ({t})" for c, t in stored.frame.dtypes.astype(str).items()
            )
        digest, run_id = _digest(frozen), None
    # Training rows are every row not in the evaluation set, duplicates included: a copy of an
    # evaluation row in training would leak it and flatter the score.
    train = data.frame[~_row_hashes(data.frame).isin(set(_row_hashes(frozen)))]
    return Prepared(
        train[features], train[target], frozen[features], frozen[target], digest, run_id, note
    )


def _compatible(stored: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame | None:
    """The stored evaluation rows typed like ``current``, or None if they cannot be."""
    if list(stored.columns) != list(current.columns):
        return None
    try:
        return stored.astype(current.dtypes.to_dict())
    except (TypeError, ValueError):
        return None


def _row_hashes(frame: pd.DataFrame) -> pd.Series:
    import pandas as pd

    return pd.util.hash_pandas_object(frame, index=False)


def _digest(frame: pd.DataFrame) -> str:
    import hashlib

    return hashlib.sha256(_row_hashes(frame).to_numpy().tobytes()).hexdigest()[:16]


def train_step(data: ValidatedData, prepared: Prepared, settings: Settings) -> Fitted:
    spec = model_spec(settings, data.schema)
    return Fitted(fit_model(prepared.x_train, prepared.y_train, data.schema, spec), spec)


def evaluate_step(
    fitted: Fitted, prepared: Prepared, schema: FeatureSchema, settings: Settings
) -> Evaluation:
    from mlrig.training.report import evaluation_plots

    metrics = score_model(fitted.model, prepared.x_eval, prepared.y_eval, schema.task)
    plots = (
        evaluation_plots(fitted.model, prepared.x_eval, prepared.y_eval, schema.task)
        if settings.train.plots
        else {}
    )
    return Evaluation(metrics, plots)


def champion_step(settings: Settings, prepared: Prepared, schema: FeatureSchema) -> ChampionScore:
    """Score the current champion on the candidate's evaluation rows (the fair comparison)."""
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
    if champion.task != schema.task:
        return ChampionScore(champion.version, None, f"champion is a {champion.task} model")
    cols = list(champion.features or schema.features)
    metrics = score_model(champion.estimator, prepared.x_eval[cols], prepared.y_eval, schema.task)
    metric = gate_metric(schema.task, settings.tracking.champion_metric)
    return ChampionScore(champion.version, metrics[metric], "scored on the same evaluation set")


def gate_step(
    evaluation: Evaluation, champion: ChampionScore, schema: FeatureSchema, settings: Settings
) -> GateDecision:
    metric = gate_metric(schema.task, settings.tracking.champion_metric)
    challenger = evaluation.metrics[metric]
    margin = settings.tracking.promotion_margin
    if champion.version is not None and champion.score is None:
        return GateDecision(False, metric, challenger, None, margin, champion.note)
    return decide_promotion(challenger, champion.score, metric, margin)


def log_register_step(
    settings: Settings,
    data: ValidatedData,
    prepared: Prepared,
    fitted: Fitted,
    evaluation: Evaluation,
    decision: GateDecision,
) -> Registered:
    """Log the run and register its model as a new version tagged with the gate decision."""
    from mlrig.tracking.evalset import EVAL_SET_ARTIFACT, remember_eval_set, to_parquet
    from mlrig.tracking.registry import CHALLENGER, register_version, set_alias
    from mlrig.tracking.runs import RunRecord, git_commit, log_training_run
    from mlrig.tracking.store import ensure_experiment, open_client

    client = open_client(settings)
    experiment_id = ensure_experiment(client, settings)
    schema = data.schema
    gate_tags = _decision_tags(decision)
    tags = {
        "mlrig.version": __version__,
        "mlrig.task": schema.task,
        "mlrig.data_digest": data.digest,
        "mlrig.data_source": data.source,
        "mlrig.eval_set.digest": prepared.eval_digest,
        "mlrig.eval_set.run_id": prepared.eval_run_id or "this run",
        **gate_tags,
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    params = {
        **fitted.spec.as_params(),
        **fitted.extra_params,
        "task": schema.task,
        "target": schema.target,
        "categorical": ",".join(schema.categorical) or "-",
        "train_rows": len(prepared.x_train),
        "eval_rows": len(prepared.x_eval),
    }
    metric_values = {**evaluation.metrics, **fitted.extra_metrics}
    if decision.champion is not None:
        metric_values[f"champion_{decision.metric}_same_eval_set"] = decision.champion
    artifacts = {f"plots/{k}": v for k, v in evaluation.plots.items()}
    eval_frame = prepared.x_eval.assign(**{schema.target: prepared.y_eval})
    if prepared.eval_run_id is None:
        artifacts[EVAL_SET_ARTIFACT] = to_parquet(eval_frame)
    example = prepared.x_train.head(5)
    record = RunRecord(
        params=params,
        metrics=metric_values,
        tags=tags,
        train_frame=prepared.x_train.assign(**{schema.target: prepared.y_train}),
        eval_frame=eval_frame,
        data_source=data.source,
        target=schema.target,
        x_example=example,
        y_example=fitted.model.predict(example),
        artifacts=artifacts,
    )
    run = log_training_run(client, experiment_id, record, fitted.model, run_id=fitted.run_id)
    name = settings.tracking.model_name
    version = register_version(client, name, run.model_uri, run.run_id)
    for key, value in {**gate_tags, "mlrig.task": schema.task}.items():
        client.set_model_version_tag(name, version, key, value)
    if prepared.eval_run_id is None:  # the first set, or one for new columns: later runs use it
        remember_eval_set(client, name, run.run_id, prepared.eval_digest)
    set_alias(client, name, CHALLENGER, version)
    experiment = settings.tracking.experiment
    if run.experiment_id != experiment_id:
        experiment = client.get_experiment(run.experiment_id).name
    return Registered(run.run_id, experiment, version)


def promote_step(settings: Settings, registered: Registered, decision: GateDecision) -> bool:
    """Move ``champion`` to the new version when the gate said so; returns whether it moved."""
    from mlrig.tracking.registry import move_champion
    from mlrig.tracking.store import open_client

    if not decision.promote:
        return False
    client = open_client(settings)
    move_champion(
        client, settings.tracking.model_name, registered.version, "gate", "mlrig", decision.reason
    )
    return True


def _decision_tags(decision: GateDecision) -> dict[str, str]:
    return {
        "mlrig.gate.promote": str(decision.promote).lower(),
        "mlrig.gate.metric": decision.metric,
        "mlrig.gate.challenger": f"{decision.challenger:.6g}",
        "mlrig.gate.champion": "" if decision.champion is None else f"{decision.champion:.6g}",
        "mlrig.gate.margin": f"{decision.margin:g}",
        "mlrig.gate.reason": decision.reason,
    }


# --- the composition -------------------------------------------------------------------------


def _direct(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


Trainer = Callable[[ValidatedData, Prepared, Settings], Fitted]


def train_pipeline(
    settings: Settings,
    mode: str = "local",
    call: StepCall = _direct,
    on_step: OnStep | None = None,
    trainer: Trainer = train_step,
) -> RunResult:
    """Run every step through ``call``; ``on_step`` hears each step's name before it starts.

    ``trainer`` produces the model (one fit for ``mlrig run``, a study for ``mlrig tune``);
    every other step is shared, so both go through the same evaluation set and gate.
    """
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
    prepared = step("prepare", prepare_step, data, settings)
    fitted = step("train", trainer, data, prepared, settings)
    try:
        evaluation = step("evaluate", evaluate_step, fitted, prepared, data.schema, settings)
        champion = step("score champion", champion_step, settings, prepared, data.schema)
        decision = gate_step(evaluation, champion, data.schema, settings)
        registered = step(
            "log + register",
            log_register_step,
            settings,
            data,
            prepared,
            fitted,
            evaluation,
            decision,
        )
    except BaseException:
        if fitted.run_id is not None:
            _fail_run(settings, fitted.run_id)
        raise
    promoted = step("promote", promote_step, settings, registered, decision)
    if promoted is not decision.promote:
        raise TrackingError(f"model {settings.tracking.model_name!r}: promotion did not apply")
    schema = data.schema
    return RunResult(
        mode=mode,
        task=schema.task,
        data_source=data.source,
        data_digest=data.digest,
        rows=len(data.frame),
        train_rows=len(prepared.x_train),
        test_rows=len(prepared.x_eval),
        eval_set=prepared.eval_note,
        features=schema.features,
        categorical=schema.categorical,
        target=schema.target,
        params={**fitted.spec.as_params(), **fitted.extra_params},
        metrics=evaluation.metrics,
        run_id=registered.run_id,
        experiment=registered.experiment,
        model_name=settings.tracking.model_name,
        version=registered.version,
        promoted=promoted,
        champion_version=registered.version if promoted else champion.version,
        decision=asdict(decision),
        tracking_uri=settings.tracking_uri,
        notes=[n for n in (data.note,) if n],
        step_seconds=seconds,
    )


def _fail_run(settings: Settings, run_id: str) -> None:
    from mlrig.tracking.runs import end_run
    from mlrig.tracking.store import open_client

    end_run(open_client(settings), run_id, "FAILED")
