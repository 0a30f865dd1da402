"""The training pipeline's steps: load → validate → prepare → train → evaluate → score the
champion → gate → log/register → promote, each a plain function of the previous results and
the settings.

The steps do the I/O (data files, MLflow through mlrig.tracking); what they decide comes from
rules.py and what they log from record.py. compose.py runs them in order, directly or as
Prefect tasks (flows.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Any

from mlrig.config import Settings
from mlrig.data.ingest import LoadedTable, load_table
from mlrig.data.schema import FeatureSchema
from mlrig.data.split import split_frame, training_problem
from mlrig.data.validate import Contract, validate_frame
from mlrig.errors import DataValidationError
from mlrig.pipeline.record import run_record, version_tags
from mlrig.pipeline.results import (
    ChampionScore,
    Evaluation,
    Fitted,
    Prepared,
    ProductionRows,
    Registered,
    ValidatedData,
)
from mlrig.pipeline.rules import (
    compatible,
    decision_tags,
    digest,
    gate_decision,
    model_spec,
    relabelled,
    split_recent,
    training_rows,
)
from mlrig.training.evaluate import FROZEN, RECENT, GateDecision, SetScores, gate_metric
from mlrig.training.train import fit_model, score_model

if TYPE_CHECKING:
    import pandas as pd


def load_step(settings: Settings) -> LoadedTable:
    return load_table(settings.data.source, settings.data.separator)


def production_step(settings: Settings, since: dt.datetime | None) -> pd.DataFrame:
    """The model's labelled production rows logged since ``since`` (a retrain's extra data)."""
    from mlrig.predictions.labelled import read_labelled
    from mlrig.predictions.store import PredictionStore

    store = PredictionStore(settings.predictions_url)
    try:
        store.create_schema()
        return read_labelled(store, settings.tracking.model_name, since)
    finally:
        store.close()


def validate_step(
    table: LoadedTable,
    settings: Settings,
    production: pd.DataFrame | None = None,
    since: dt.datetime | None = None,
) -> ValidatedData:
    """Validate the source, then a retrain's ``production`` rows against the source's schema
    (the same checks, with the feedback as the target)."""
    d = settings.data
    contract = Contract(
        d.target, d.features, d.categorical, list(d.drop), d.task, d.positive_threshold
    )
    checked = validate_frame(table.frame, table.source, contract)
    # fail on a bad model family or metric before any training
    model_spec(settings.train, checked.schema.task)
    gate_metric(checked.schema.task, settings.tracking.champion_metric)
    rows = None
    if production is not None:
        rows = _production_rows(production, checked.schema, settings, since)
    return ValidatedData(
        checked.frame, checked.schema, table.source, table.digest, checked.note, rows
    )


def _production_rows(
    raw: pd.DataFrame, schema: FeatureSchema, settings: Settings, since: dt.datetime | None
) -> ProductionRows:
    import pandas as pd

    from mlrig.predictions.labelled import ID, LOGGED_AT

    source = f"labelled production rows of {settings.tracking.model_name!r} (prediction store)"
    features, target = list(schema.features), schema.target
    if raw.empty:
        empty = pd.DataFrame(columns=[*features, target])
        return ProductionRows(empty, empty, [], [], _iso(since), None, None)
    missing = [f for f in features if f not in raw.columns]
    if missing:
        raise DataValidationError(
            f"{source}: the logged features lack column(s) {', '.join(missing)} "
            "that the training data has"
        )
    frame = raw[features].assign(**{target: raw["actual"]})
    contract = Contract(target, features, list(schema.categorical), [], schema.task)
    checked = validate_frame(frame, source, contract, constant_target=True).frame
    older, recent = split_recent(checked, settings.loop.recent_share)
    return ProductionRows(
        older,
        recent,
        raw.loc[older.index, ID].tolist(),
        raw.loc[recent.index, ID].tolist(),
        _iso(since),
        _iso(raw[LOGGED_AT].iloc[0]),
        _iso(raw[LOGGED_AT].iloc[-1]),
    )


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.isoformat(timespec="seconds")


def prepare_step(data: ValidatedData, settings: Settings) -> Prepared:
    """Split off evaluation rows, or reuse the model's frozen evaluation set when it has one
    (then every row not in it is a training row)."""
    from mlrig.tracking.evalset import load_eval_set
    from mlrig.tracking.store import open_client

    schema = data.schema
    features, target = list(schema.features), schema.target
    stored = load_eval_set(open_client(settings), settings.tracking.model_name)
    frozen = compatible(stored.frame, data.frame) if stored is not None else None
    stale = _stale(stored.labelling, frozen, data, settings) if stored is not None else None
    if stored is not None and frozen is not None and stale is None:
        note = f"frozen evaluation set of run {stored.run_id} ({len(frozen)} rows)"
        eval_digest, run_id = stored.digest, stored.run_id
    else:
        split = split_frame(
            data.frame,
            schema,
            settings.data.test_size,
            settings.data.split_seed,
            stratify=schema.task == "classification",
            source=f"data file {data.source}",
        )
        frozen = split.x_test.assign(**{target: split.y_test})
        note = "new evaluation set (stored with this run)"
        if stale is not None:
            note += f"; the stored one is stale: {stale}"
        elif stored is not None:
            note += "; the stored one has other columns or types: " + ", ".join(
                f"{c} ({t})" for c, t in stored.frame.dtypes.astype(str).items()
            )
        eval_digest, run_id = digest(frozen), None
    prod = data.production
    if prod is None:
        train = training_rows(data.frame, frozen, features)
        x_recent = y_recent = None
    else:
        import pandas as pd

        # no copy of an evaluation row or of a recent-slice row may train
        train = training_rows(
            pd.concat([data.frame, prod.train], ignore_index=True),
            pd.concat([frozen, prod.recent], ignore_index=True),
            features,
        )
        x_recent, y_recent = prod.recent[features], prod.recent[target]
    problem = training_problem(train[target], schema.task == "classification")
    if problem is not None:
        raise DataValidationError(f"data file {data.source}: {problem}")
    return Prepared(
        train[features],
        train[target],
        frozen[features],
        frozen[target],
        eval_digest,
        run_id,
        note,
        x_recent,
        y_recent,
    )


def _stale(
    labelling: str | None, frozen: pd.DataFrame | None, data: ValidatedData, settings: Settings
) -> str | None:
    """Why the stored evaluation set may not be reused although its columns fit, or None.

    Its labels are stale when it was labelled another way (target, task, positive threshold)
    or when the current data labels some of its rows otherwise (sets stored before the
    labelling was recorded, or a relabelled source)."""
    if frozen is None:
        return None
    wanted = _labelling(data.schema, settings)
    if labelling is not None and labelling != wanted:
        return f"labelled as {labelling}, this run labels as {wanted}"
    schema = data.schema
    changed = relabelled(frozen, data.frame, list(schema.features), schema.target)
    if changed:
        return f"{changed} of its rows carry another {schema.target!r} in the current data"
    return None


def train_step(data: ValidatedData, prepared: Prepared, settings: Settings) -> Fitted:
    spec = model_spec(settings.train, data.schema.task)
    return Fitted(fit_model(prepared.x_train, prepared.y_train, data.schema, spec), spec)


def evaluate_step(
    fitted: Fitted, prepared: Prepared, schema: FeatureSchema, settings: Settings
) -> Evaluation:
    from mlrig.training.report import evaluation_plots

    metrics = score_model(fitted.model, prepared.x_eval, prepared.y_eval, schema.task)
    recent = {}
    if prepared.recent is not None:
        x_recent, y_recent = prepared.recent
        recent = score_model(fitted.model, x_recent, y_recent, schema.task)
    plots = (
        evaluation_plots(fitted.model, prepared.x_eval, prepared.y_eval, schema.task)
        if settings.train.plots
        else {}
    )
    return Evaluation(metrics, plots, recent)


def champion_step(settings: Settings, prepared: Prepared, schema: FeatureSchema) -> ChampionScore:
    """Score the current champion on the candidate's evaluation rows and recent slice (the
    fair comparison: the same rows for both)."""
    from mlrig.tracking.loading import LoadTrust, load_model
    from mlrig.tracking.registry import CHAMPION, alias_version
    from mlrig.tracking.store import open_client

    client = open_client(settings)
    name = settings.tracking.model_name
    if alias_version(client, name, CHAMPION) is None:
        return ChampionScore(None, None, "no champion yet")
    # the gate runs the champion's file: the same trust rules as serving it
    champion = load_model(client, f"{name}@{CHAMPION}", LoadTrust.from_settings(settings.serving))
    if champion.features and set(champion.features) != set(schema.features):
        return ChampionScore(
            champion.version, None, "champion was trained on different feature columns"
        )
    if champion.task != schema.task:
        return ChampionScore(champion.version, None, f"champion is a {champion.task} model")
    cols = list(champion.features or schema.features)
    metric = gate_metric(schema.task, settings.tracking.champion_metric)
    metrics = score_model(champion.estimator, prepared.x_eval[cols], prepared.y_eval, schema.task)
    recent = None
    if prepared.recent is not None:
        x_recent, y_recent = prepared.recent
        recent = score_model(champion.estimator, x_recent[cols], y_recent, schema.task)[metric]
    return ChampionScore(
        champion.version, metrics[metric], "scored on the same evaluation rows", recent
    )


def gate_step(
    evaluation: Evaluation,
    champion: ChampionScore,
    prepared: Prepared,
    schema: FeatureSchema,
    settings: Settings,
) -> GateDecision:
    """Weigh both models on the frozen set and, in a retrain, the recent slice; the
    ``[loop] gate`` rule says which decides (a plain run has only the frozen set)."""
    metric = gate_metric(schema.task, settings.tracking.champion_metric)
    sets = [SetScores(FROZEN, len(prepared.x_eval), evaluation.metrics[metric], champion.score)]
    if prepared.recent_rows:
        challenger = evaluation.recent_metrics[metric]
        sets.append(SetScores(RECENT, prepared.recent_rows, challenger, champion.recent_score))
    return gate_decision(
        sets,
        champion,
        metric,
        settings.tracking.promotion_margin,
        settings.loop.gate if prepared.x_recent is not None else None,
        settings.loop.recent_min_rows,
    )


def recover_step(settings: Settings) -> tuple[list[str], list[str]]:
    """Close what a killed training of this model left open (its RUNNING runs → KILLED, its
    versions with a pending record → failed). Runs first, under the training lease, so
    nothing else writes the model's runs now. Returns (runs killed, versions failed)."""
    import os

    from mlrig.tracking.registry import close_orphans
    from mlrig.tracking.store import ensure_experiment, open_client

    client = open_client(settings)
    experiment_id = ensure_experiment(client, settings)
    name = settings.tracking.model_name
    return close_orphans(
        client, name, experiment_id, lease_tag(settings), os.environ.get("MLFLOW_RUN_ID")
    )


def lease_tag(settings: Settings) -> str:
    """The training lease as a run tag: which store (password masked) and which lease."""
    from mlrig.predictions.locks import train_lock
    from mlrig.tracking.store import redact

    return f"{redact(settings.predictions_url)} {train_lock(settings.tracking.model_name)}"


def log_register_step(
    settings: Settings,
    data: ValidatedData,
    prepared: Prepared,
    fitted: Fitted,
    evaluation: Evaluation,
    decision: GateDecision,
) -> Registered:
    """Log the run and register its model as a new version tagged with the gate decision.

    The version is born with its record marked pending (in the same transaction as the gate
    tags), marked complete once the evaluation-set tag is written, and only then becomes the
    challenger; the run stays RUNNING until the pipeline finishes it after the promotion. A
    failure after registration marks the version failed and the run FAILED, so nothing is
    left looking usable without its full record.
    """
    from dataclasses import replace

    from mlrig.tracking.evalset import remember_eval_set
    from mlrig.tracking.registry import (
        CHALLENGER,
        delete_alias,
        mark_record,
        register_version,
        set_alias,
    )
    from mlrig.tracking.runs import end_run, git_commit, log_training_run
    from mlrig.tracking.store import ensure_experiment, open_client
    from mlrig.tracking.tags import EVAL_SET_LABELLING, LEASE, MODEL, RECORD, RecordState

    client = open_client(settings)
    experiment_id = ensure_experiment(client, settings)
    name = settings.tracking.model_name
    record = run_record(
        data,
        prepared,
        fitted,
        evaluation,
        decision,
        git_commit(),
        settings.monitoring.reference_rows,
    )
    own = {
        MODEL: name,
        LEASE: lease_tag(settings),
        EVAL_SET_LABELLING: _labelling(data.schema, settings),
    }
    record = replace(record, tags={**record.tags, **own})
    run = log_training_run(
        client, experiment_id, record, fitted.model, run_id=fitted.run_id, finish=False
    )
    version = None
    try:
        tags = {**version_tags(decision, data.schema.task), RECORD: RecordState.PENDING}
        version = register_version(client, name, run.model_uri, run.run_id, tags=tags)
        if prepared.eval_run_id is None:  # the first set, or one for new data: later runs use it
            remember_eval_set(
                client, name, run.run_id, prepared.eval_digest, _labelling(data.schema, settings)
            )
        mark_record(client, name, version, RecordState.COMPLETE)
        set_alias(client, name, CHALLENGER, version)
    except BaseException:
        if version is not None:
            with _best_effort():
                mark_record(client, name, version, RecordState.FAILED)
                delete_alias(client, name, CHALLENGER)
        with _best_effort():
            end_run(client, run.run_id, "FAILED")
        raise
    experiment = settings.tracking.experiment
    if run.experiment_id != experiment_id:
        experiment = client.get_experiment(run.experiment_id).name
    return Registered(run.run_id, experiment, version)


def _best_effort() -> contextlib.AbstractContextManager[None]:
    """Cleanup after a failure must not hide the failure itself."""
    return contextlib.suppress(Exception)


def _labelling(schema: FeatureSchema, settings: Settings) -> str:
    from mlrig.tracking.tags import encode_labelling

    return encode_labelling(schema.target, schema.task, settings.data.positive_threshold)


def promote_step(
    settings: Settings,
    registered: Registered,
    decision: GateDecision,
    champion: ChampionScore,
) -> GateDecision:
    """Move ``champion`` to the new version when the gate said so, then finish the run.

    The move is a compare-and-set under the model's promotion lease: if the champion is no
    longer the version this run scored (another run, machine or a hand promotion moved it
    meanwhile), the challenger is NOT promoted; the decision returned (and tagged on the run
    and version) says why. Returns the decision that applied.
    """
    from dataclasses import replace

    from mlrig.pipeline.runner import promotion_lease
    from mlrig.tracking.registry import (
        CHAMPION,
        ChampionMovedError,
        alias_version,
        move_champion,
    )
    from mlrig.tracking.runs import end_run
    from mlrig.tracking.store import open_client

    client = open_client(settings)
    name = settings.tracking.model_name
    if decision.promote:
        try:
            with promotion_lease(settings, name, f"gate of version {registered.version}"):
                move_champion(
                    client,
                    name,
                    registered.version,
                    "gate",
                    "mlrig",
                    decision.reason,
                    expected=champion.version,
                )
        except ChampionMovedError as exc:
            decision = replace(decision, promote=False, reason=f"{decision.reason}; but {exc}")
            _retag(client, name, registered, decision)
        except BaseException as exc:  # the lease busy, the store down: say so, then fail
            if alias_version(client, name, CHAMPION) != registered.version:
                failed = replace(
                    decision, promote=False, reason=f"{decision.reason}; not promoted: {exc}"
                )
                with _best_effort():
                    _retag(client, name, registered, failed)
            raise
    end_run(client, registered.run_id, "FINISHED")
    return decision


def _retag(client: Any, name: str, registered: Registered, decision: GateDecision) -> None:
    """The decision that applied, on the version and its run (the gate's first one said
    promote)."""
    for key, value in decision_tags(decision).items():
        client.set_model_version_tag(name, registered.version, key, value)
        client.set_tag(registered.run_id, key, value)


def fail_run(settings: Settings, run_id: str) -> None:
    """Mark the open run ``run_id`` FAILED (a step after training raised)."""
    from mlrig.tracking.runs import end_run
    from mlrig.tracking.store import open_client

    end_run(open_client(settings), run_id, "FAILED")
