"""Benchmark: the cost of tracking an Optuna study in MLflow, per model family.

For each family the same study (same data, sampler seed, Optuna SQLite storage, objective) runs
three ways, rounds alternating so machine noise hits all alike:

- untracked: Optuna alone;
- naive: one synchronous nested MLflow run per trial (start_run + log_params + log_metric),
  the way the seeds' auto_train does it;
- mlrig: mlrig's tuning worker — each trial still a nested run with params and score, written
  by a background thread in bulk (log_batch), no model per trial.

Timed: the study until every trial is durable in both stores (process start-up, data loading,
the refit and the gate are not timed; `mlrig tune` adds those once). Prints medians and ratios.

    python bench/tuning.py [--trials 100] [--rounds 3] [--families elasticnet hist_gradient_boosting]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import optuna
from mlflow import MlflowClient

from mlrig.config import Settings, load_settings
from mlrig.pipeline import steps
from mlrig.pipeline.tuning import WorkerJob, open_study, run_worker
from mlrig.tracking.runs import start_parent_run
from mlrig.tracking.store import ensure_experiment, open_client
from mlrig.training.tuning import Objective, TrialData

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _trial_data(settings: Settings) -> TrialData:
    from mlrig.data.split import split_frame

    data = steps.validate_step(steps.load_step(settings), settings)
    prepared = steps.prepare_step(data, settings)
    frame = prepared.x_train.assign(**{data.schema.target: prepared.y_train})
    split = split_frame(frame, data.schema, 0.2, 42)
    return TrialData(data.schema, split.x_train, split.y_train, split.x_test, split.y_test)


def _settings(home: Path) -> Settings:
    return load_settings(None, {"home": str(home)})


def untracked(home: Path, data: TrialData, family: str, trials: int, study: str) -> None:
    s = _settings(home)
    open_study(s, study, "rmse", 42).optimize(
        Objective(data, [family], "rmse", 42), n_trials=trials
    )


def naive(home: Path, data: TrialData, family: str, trials: int, study: str) -> None:
    s = _settings(home)
    client = open_client(s)
    experiment_id = ensure_experiment(client, s)
    objective = Objective(data, [family], "rmse", 42)
    mlflow.set_tracking_uri(s.tracking_uri)  # plain MLflow: the fluent API's process-wide store
    with mlflow.start_run(experiment_id=experiment_id, run_name=study):

        def tracked(trial: optuna.Trial) -> float:
            with mlflow.start_run(nested=True, run_name=f"trial-{trial.number}"):
                value = objective(trial)
                mlflow.log_params(trial.params)
                mlflow.log_metric("validation_rmse", value)
            return value

        open_study(s, study, "rmse", 42).optimize(tracked, n_trials=trials)


def mlrig_worker(home: Path, data: TrialData, family: str, trials: int, study: str) -> None:
    s = _settings(home)
    client = open_client(s)
    experiment_id = ensure_experiment(client, s)
    parent, experiment_id = start_parent_run(client, experiment_id, study, {})
    run_worker(
        WorkerJob(
            s.model_dump(),
            study,
            data,
            [family],
            "rmse",
            experiment_id,
            parent,
            trials,
            trials,
            42,
            None,
        )
    )
    client.set_terminated(parent)


Way = Callable[[Path, TrialData, str, int, str], None]
WAYS: dict[str, Way] = {"untracked": untracked, "naive": naive, "mlrig": mlrig_worker}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--families", nargs="+", default=["elasticnet", "hist_gradient_boosting"])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlrig-bench-tune-"))
    data = _trial_data(_settings(tmp / "data"))
    rows: list[tuple[str, dict[str, float]]] = []
    for family in args.families:
        times: dict[str, list[float]] = {w: [] for w in WAYS}
        for way, fn in WAYS.items():  # warm-up: creates each store, imports, caches
            fn(tmp / way, data, family, 3, f"warm-{family}")
        for r in range(args.rounds):
            for way, fn in WAYS.items():
                t0 = time.perf_counter()
                fn(tmp / way, data, family, args.trials, f"{family}-{r}")
                times[way].append(time.perf_counter() - t0)
                print(f"  {family} round {r + 1} {way}: {times[way][-1]:.2f} s", flush=True)
        rows.append((family, {w: statistics.median(v) for w, v in times.items()}))
    print(f"\n{args.trials} trials per study, median of {args.rounds} rounds (seconds)\n")
    print(
        "| family | untracked | naive nested runs | mlrig | naive / untracked | mlrig / untracked |"
    )
    print("|---|---|---|---|---|---|")
    for family, m in rows:
        print(
            f"| {family} | {m['untracked']:.2f} | {m['naive']:.2f} | {m['mlrig']:.2f} "
            f"| {m['naive'] / m['untracked']:.2f}× | **{m['mlrig'] / m['untracked']:.2f}×** |"
        )
    _check(MlflowClient(f"sqlite:///{tmp / 'mlrig' / 'mlflow.db'}"), args.trials)


def _check(client: MlflowClient, trials: int) -> None:
    """The benchmark is void unless every trial of every mlrig study is a nested run."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=50_000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    for parent in parents:
        children = client.search_runs(
            experiments, f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=5000
        )
        expected = 3 if parent.info.run_name.startswith("warm-") else trials
        with_score = [c for c in children if c.data.params and c.data.metrics]
        assert len(with_score) == expected, (parent.info.run_name, len(with_score))
    print(f"\ncheck: every trial of {len(parents)} mlrig studies is a nested run with its score")


if __name__ == "__main__":
    main()
