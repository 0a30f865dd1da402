"""`mlrig tune`: an Optuna study as the pipeline's training step.

The study lives in Optuna's RDB storage (SQLite in the mlrig home, or a team database), so it
can be resumed and shared: ``--workers K`` starts K processes on the same study, and other
machines may join by pointing at the same storage — Optuna's own distributed mode. Each
trial becomes a nested MLflow run under one parent run; the best trial is refitted on all
training rows, logged into the parent run, and offered to the same champion gate as
``mlrig run``.
"""

from __future__ import annotations

import multiprocessing
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mlrig.config import Settings, load_settings
from mlrig.data.split import split_frame
from mlrig.errors import TuningError
from mlrig.pipeline.compose import Trainer
from mlrig.pipeline.results import Fitted, Prepared, ValidatedData
from mlrig.pipeline.rules import model_spec
from mlrig.training.evaluate import gate_metric
from mlrig.training.families import family
from mlrig.training.train import fit_model
from mlrig.training.tuning import Objective, TrialData, direction, spec_from_params

if TYPE_CHECKING:
    import optuna

# Progress: (finished trials, target, best value so far)
OnProgress = Callable[[int, int, float | None], None]

HEARTBEAT_S = 2  # a trial whose process died is failed (and retried) after ~3 beats
_FINISHED = ("COMPLETE", "PRUNED")


@dataclass(frozen=True)
class WorkerJob:
    """Everything one tuning process needs (picklable: sent to spawned workers)."""

    settings: dict[str, Any]
    study: str
    data: TrialData
    families: list[str]
    metric: str
    experiment_id: str
    parent_run_id: str
    n_trials: int
    target: int
    seed: int
    timeout: float | None


def check_storage(url: str) -> None:
    """Open Optuna's storage once (creating its tables) and let go; raises TuningError naming
    the URL without its password when it cannot be opened."""
    open_storage(url).engine.dispose()


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna RDB storage with heartbeats: trials of a killed process are failed and retried.
    Raises TuningError (the URL without its password) when it cannot be opened."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": 60}  # several workers share the file
    from sqlalchemy.exc import SQLAlchemyError

    from mlrig.redact import redact_text, redact_url

    with warnings.catch_warnings():
        # heartbeats and the retry callback are marked experimental in Optuna 4–5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=3 * HEARTBEAT_S,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
        except SQLAlchemyError as exc:  # refused login, closed port, missing database
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise TuningError(
                f"Optuna storage {redact_url(url)} (tune.storage / MLRIG_OPTUNA_STORAGE) cannot "
                f"be opened: {redact_text(reason)}"
            ) from exc


STUDY_METRIC = "mlrig.metric"  # study user attribute: the gate metric its values score


def open_study(settings: Settings, name: str, metric: str, seed: int) -> optuna.Study:
    """The study ``name`` (created if new) whose trials score ``metric``.

    Optuna's ``load_if_exists`` reuses a study whatever its direction, and its values do not
    say which metric they are; resuming one that scored another metric (or the other way)
    would rank new trials against meaningless old ones. So the metric is kept with the study
    and a mismatch is refused with TuningError."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    wanted = direction(metric)
    try:
        study = optuna.create_study(
            study_name=name,
            storage=open_storage(settings.tune_storage),
            direction=wanted,
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
            load_if_exists=True,
        )
    except ValueError as exc:  # e.g. an existing multi-objective study
        raise TuningError(f"study {name!r} in {_where(settings)}: {exc}") from exc
    stored = study.user_attrs.get(STUDY_METRIC)
    found = study.direction.name.lower()
    if found != wanted or stored not in (None, metric):
        raise TuningError(
            f"study {name!r} in {_where(settings)} scores "
            f"{stored or 'an unrecorded metric'} ({found}); this run's gate metric is {metric} "
            f"({wanted}), so its trials cannot be resumed: pass another --study name"
        )
    if stored is None:
        if study.trials:  # trials of an unknown metric in the right direction: refuse too
            raise TuningError(
                f"study {name!r} in {_where(settings)} has {len(study.trials)} trial(s) but no "
                f"recorded metric, so they cannot be trusted to score {metric}: pass another "
                "--study name"
            )
        study.set_user_attr(STUDY_METRIC, metric)
    return study


def finished_trials(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def run_worker(job: WorkerJob, on_trial: Callable[[optuna.Study], None] | None = None) -> None:
    """Run up to ``job.n_trials`` trials of the shared study, logging each as a nested run."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from mlrig.tracking.store import open_client
    from mlrig.tracking.trials import TrialLogger, TrialRecord

    settings = load_settings(None, job.settings)
    study = open_study(settings, job.study, job.metric, job.seed)
    logger = TrialLogger(open_client(settings), job.experiment_id, job.parent_run_id)
    metric_name = f"validation_{job.metric}"

    def log_trial(study: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
        spec = spec_from_params(t.params, job.families, job.seed)
        value = t.value if t.value is not None else _last(t.intermediate_values)
        start = t.datetime_start.timestamp() if t.datetime_start else time.time()
        end = t.datetime_complete.timestamp() if t.datetime_complete else time.time()
        logger.submit(
            TrialRecord(
                t.number,
                t.state.name,
                {"model": spec.family, **spec.params},
                {} if value is None else {metric_name: value},
                int(start * 1000),
                int(end * 1000),
            )
        )
        if on_trial is not None:
            on_trial(study)

    try:
        study.optimize(
            Objective(job.data, job.families, job.metric, job.seed),
            n_trials=job.n_trials,
            timeout=job.timeout,
            callbacks=[
                log_trial,
                MaxTrialsCallback(job.target, states=(TrialState.COMPLETE, TrialState.PRUNED)),
            ],
            catch=(ValueError, ArithmeticError),
        )
    finally:
        logger.close()


def _last(values: dict[int, float]) -> float | None:
    return values[max(values)] if values else None


def make_tune_step(on_progress: OnProgress | None = None) -> Trainer:
    """The training step of `mlrig tune` (a Trainer for compose.train_pipeline)."""

    def tune_step(data: ValidatedData, prepared: Prepared, settings: Settings) -> Fitted:
        from mlrig.pipeline.publish import lease_tag
        from mlrig.tracking.runs import end_run, start_parent_run
        from mlrig.tracking.store import ensure_experiment, open_client
        from mlrig.tracking.tags import encode_study

        schema, tune = data.schema, settings.tune
        families = [family(f, schema.task, "tune.models").name for f in tune.models or []]
        families = families or [model_spec(settings.train, schema.task).family]
        metric = gate_metric(schema.task, settings.tracking.champion_metric)
        name = tune.study or settings.tracking.model_name
        study = open_study(settings, name, metric, tune.seed)
        done = finished_trials(study)
        remaining = max(0, tune.trials - done)
        client = open_client(settings)
        experiment_id = ensure_experiment(client, settings)
        parent, experiment_id = start_parent_run(
            client,
            experiment_id,
            f"tune-{name}",
            encode_study(name, families, settings.tracking.model_name, lease_tag(settings)),
        )
        try:
            split = split_frame(
                prepared.x_train.assign(**{schema.target: prepared.y_train}),
                schema,
                tune.validation_size,
                tune.seed,
                stratify=schema.task == "classification",
            )
            job = WorkerJob(
                settings.model_dump(),
                name,
                TrialData(schema, split.x_train, split.y_train, split.x_test, split.y_test),
                families,
                metric,
                experiment_id,
                parent,
                remaining,
                tune.trials,
                tune.seed,
                tune.timeout,
            )
            _run_workers(job, tune.workers, study, on_progress)
            best = _best(study, name)
            spec = spec_from_params(best.params, families, settings.train.seed)
            model = fit_model(prepared.x_train, prepared.y_train, schema, spec)
        except BaseException:
            end_run(client, parent, "FAILED")
            raise
        return Fitted(
            model,
            spec,
            extra_params={
                "study": name,
                "study_trials": finished_trials(study),
                "trials_this_run": remaining,
                "best_trial": best.number,
                "searched": ",".join(families),
            },
            extra_metrics={f"best_validation_{metric}": float(best.value or 0.0)},
            run_id=parent,
        )

    return tune_step


def _run_workers(
    job: WorkerJob, workers: int, study: optuna.Study, on_progress: OnProgress | None
) -> None:
    def report(s: optuna.Study) -> None:
        if on_progress is not None:
            on_progress(finished_trials(s), job.target, _best_value(s))

    report(study)
    if job.n_trials == 0:
        return
    if workers == 1:
        run_worker(job, report)
        return
    shares = [
        job.n_trials // workers + (1 if i < job.n_trials % workers else 0) for i in range(workers)
    ]
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=run_worker,
            args=(replace(job, n_trials=n, seed=job.seed + i),),
            name=f"mlrig-tune-{i}",
        )
        for i, n in enumerate(shares)
        if n > 0
    ]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(0.5)
            report(study)
    finally:
        for p in procs:
            p.join()
    report(study)
    failed = [p.name for p in procs if p.exitcode != 0]
    if failed:
        raise TuningError(f"study {job.study!r}: worker(s) {', '.join(failed)} failed")


def _best(study: optuna.Study, name: str) -> optuna.trial.FrozenTrial:
    try:
        return study.best_trial
    except ValueError:
        raise TuningError(
            f"study {name!r}: no trial completed (see the failed trials in `mlrig ui`)"
        ) from None


def _best_value(study: optuna.Study) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:
        return None


def _where(settings: Settings) -> str:
    from mlrig.tracking.store import redact

    return redact(settings.tune_storage)
