"""Monitoring speed: `mlrig monitor` against Evidently's DataDriftPreset on the same frames.

Windows of 10k, 100k and 1M white-wine predictions (a drifted population) are written through
the real prediction store, once as one-row requests and once as 1,000-row requests, against
the red-wine model's reference profile. For each window, in fresh processes:

- mlrig: read the window from the store (bulk decode) + assess it (drift of every feature and
  the prediction, live quality), the part `mlrig monitor` spends on the window; and the whole
  `mlrig monitor` command (process start, MLflow, reference, store write of the result);
- Evidently: `Report([DataDriftPreset()]).run(current, reference)` on the same frames
  (compute only; its import is timed separately).

Medians of --repeats runs; peak RSS of each process. Run alone: `python bench/monitoring.py`
(never alongside tests or another benchmark).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
MODEL = "wine-quality"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reference(ref_dir: Path):  # type: ignore[no-untyped-def]
    from mlrig.monitoring.profile import FILES, ReferenceProfile

    return ReferenceProfile.from_files({f: (ref_dir / f).read_bytes() for f in FILES})


def worker_mlrig(db: str, ref_dir: str) -> None:
    import scipy.spatial.distance
    import scipy.stats  # noqa: F401  (imports are not compute: Evidently's are excluded too)

    from mlrig.monitoring.assess import Rules, assess
    from mlrig.predictions.store import PredictionStore
    from mlrig.predictions.window import read_window

    ref = _reference(Path(ref_dir))
    store = PredictionStore(db)
    base = _peak_mb()
    t0 = time.perf_counter()
    window = read_window(store, MODEL)
    t1 = time.perf_counter()
    result = assess(MODEL, window, lambda v: ref, lambda v: {"rmse": 0.7}, Rules())
    t2 = time.perf_counter()
    assert result.verdict == "drift", result.verdict
    print(
        json.dumps(
            {
                "read": t1 - t0,
                "compute": t2 - t1,
                "rows": window.n_rows,
                "peak_mb": _peak_mb(),
                "base_mb": base,
            }
        )
    )


def worker_evidently(db: str, ref_dir: str) -> None:
    import warnings

    import pandas as pd

    from mlrig.predictions.store import PredictionStore
    from mlrig.predictions.window import read_window

    ref = _reference(Path(ref_dir))
    part = read_window(PredictionStore(db), MODEL).parts[0]
    current = pd.DataFrame(part.x, columns=list(part.features))
    del part
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    t1 = time.perf_counter()
    base = _peak_mb()
    definition = DataDefinition(numerical_columns=list(ref.features))
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(ref.sample[list(ref.features)], data_definition=definition),
    )
    snapshot.dict()
    t2 = time.perf_counter()
    print(
        json.dumps({"import": t1 - t0, "compute": t2 - t1, "peak_mb": _peak_mb(), "base_mb": base})
    )


def _worker(kind: str, db: str, ref_dir: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, f"_{kind}", db, str(ref_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_window(db_path: Path, n: int, per_request: int) -> float:
    """``n`` white-wine predictions through the real store, ``per_request`` rows a request."""
    import numpy as np
    import pandas as pd

    from mlrig.data.ingest import embedded_path
    from mlrig.predictions.records import PredictionBatch, generated_ids, new_batch_id
    from mlrig.predictions.store import PredictionStore

    white = pd.read_csv(embedded_path().with_name("winequality-white.csv"), sep=";")
    features = tuple(c for c in white.columns if c != "quality")
    x = white[list(features)].to_numpy()[np.random.default_rng(0).integers(0, len(white), n)]
    preds = np.random.default_rng(1).normal(5.6, 0.5, n)
    store = PredictionStore(f"sqlite:///{db_path}")
    store.create_schema()
    t0 = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    group: list[PredictionBatch] = []
    for start in range(0, n, per_request):
        b = new_batch_id()
        k = min(per_request, n - start)
        group.append(
            PredictionBatch(
                b,
                generated_ids(b, k),
                False,
                now,
                MODEL,
                "1",
                "predict",
                features,
                x[start : start + k],
                preds[start : start + k],
                1.0,
            )
        )
        if len(group) * per_request >= 20_000:
            store.insert_batches(group)
            group = []
    store.insert_batches(group)
    store.close()
    return time.perf_counter() - t0


def _cli(home: Path, db: str) -> float:
    env = {**os.environ, "MLRIG_PREDICTIONS_URL": db}
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "mlrig"), "monitor", "--home", str(home), "--no-track", "--since", "7d"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr  # white wine against the red-wine model: drift
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="mlrig-bench-monitoring-"))
    home = work / ".mlrig"
    subprocess.run([str(BIN / "mlrig"), "run", "--home", str(home), "--quiet"], check=True)

    from mlrig.config import load_settings
    from mlrig.monitoring.references import load_reference
    from mlrig.tracking.monitoring import version_record
    from mlrig.tracking.store import open_client

    client = open_client(load_settings(None, {"home": home}))
    profile = load_reference(client, version_record(client, MODEL, "1"))
    ref_dir = work / "reference"
    for rel, content in profile.to_files().items():
        (ref_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (ref_dir / rel).write_bytes(content)

    rows = []
    for n in sizes:
        written = {p: write_window(work / f"w{n}-{p}.db", n, p) for p in (1, 1000)}
        same_frames = f"sqlite:///{work / f'w{n}-1000.db'}"
        evidently = [_worker("evidently", same_frames, ref_dir) for _ in range(args.repeats)]
        for per_request in (1, 1000):
            db = f"sqlite:///{work / f'w{n}-{per_request}.db'}"
            runs = [_worker("mlrig", db, ref_dir) for _ in range(args.repeats)]
            cli = statistics.median(_cli(home, db) for _ in range(args.repeats))
            rows.append((n, per_request, written[per_request], runs, cli, evidently))
            print(f"… {n:>9,} rows, {per_request} per request done", file=sys.stderr)

    med = statistics.median
    print(f"\nmachine: {os.cpu_count()} cores; medians of {args.repeats} runs each, same run\n")
    print(
        "| predictions | rows/request | write | mlrig read | mlrig assess | **mlrig read+assess** "
        "| peak RSS | `mlrig monitor` (whole CLI) | Evidently DataDriftPreset | Evidently peak RSS "
        "| Evidently ÷ mlrig |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n, per_request, written, runs, cli, ev in rows:
        read, comp = med(r["read"] for r in runs), med(r["compute"] for r in runs)
        total = med(r["read"] + r["compute"] for r in runs)
        ev_t = med(e["compute"] for e in ev)
        print(
            f"| {n:,} | {per_request:,} | {written:.1f} s | {read:.2f} s | {comp:.2f} s | **{total:.2f} s** "
            f"| {max(r['peak_mb'] for r in runs):.0f} MB | {cli:.1f} s | {ev_t:.2f} s "
            f"| {max(e['peak_mb'] for e in ev):.0f} MB | **{ev_t / total:.1f}×** |"
        )
    ev_import = med(e["import"] for _, _, _, _, _, ev in rows for e in ev)
    print(f"\nEvidently import: {ev_import:.1f} s (not in its column).")
    for per_request in (1, 1000):
        series = [
            (n, med(r["read"] + r["compute"] for r in runs))
            for n, p, _, runs, _, _ in rows
            if p == per_request
        ]
        growth = ", ".join(
            f"{b[0] // a[0]}× rows → {b[1] / a[1]:.1f}× time" for a, b in itertools.pairwise(series)
        )
        print(f"growth ({per_request} row/request): {growth}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("_mlrig", "_evidently"):
        {"_mlrig": worker_mlrig, "_evidently": worker_evidently}[sys.argv[1]](*sys.argv[2:])
    else:
        main()
