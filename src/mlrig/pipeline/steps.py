"""The training pipeline's steps up to the gate: load → validate → prepare → train → evaluate
→ score the champion → gate, each a plain function of the previous results and the settings
(publish.py holds the steps after it: log/register → promote).

The steps do the I/O (data files, MLflow through mlrig.tracking); what they decide comes from
rules.py and what they log from record.py. compose.py runs them in order, directly or as
Prefect tasks (flows.py).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from mlrig.config import Settings
from mlrig.data.ingest import LoadedTable, load_table
from mlrig.data.schema import FeatureSchema
from mlrig.data.split import split_frame, training_problem
from mlrig.data.validate import Contract, validate_frame
from mlrig.errors import DataValidationError
from mlrig.pipeline.results import (
    ChampionScore,
    Evaluation,
    Fitted,
    Prepared,
    ProductionRows,
    ValidatedData,
)
from mlrig.pipeline.rules import (
    compatible,
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
        d.target,
        d.features,
        d.categorical,
        list(d.drop),
        d.task,
        d.positive_threshold,
        tuple(settings.serving.id_fields),
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
    wanted = labelling_of(data.schema, settings)
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


def labelling_of(schema: FeatureSchema, settings: Settings) -> str:
    """How the target became labels (target, task, threshold): a stored evaluation set
    labelled otherwise is stale."""
    from mlrig.tracking.tags import encode_labelling

    return encode_labelling(schema.target, schema.task, settings.data.positive_threshold)
