"""Benchmark: `mlrig predict` vs `mlflow models predict` on the same 1M-row wine file.

    python bench/batch.py [--rows 1000000]

Trains a champion in a temporary home, writes the wine features (red wines resampled, no
target) as a CSV of ROWS rows, the same as Parquet, and a CSV of ROWS/10 rows, then runs one
command at a time (never alongside tests or another benchmark):

- `mlflow models predict -m models:/wine-quality@champion -i IN -o OUT -t csv --env-manager local`
  (it writes JSON) on 1,000 rows and on ROWS
- `mlrig predict IN -o OUT` on 1,000 rows, CSV → CSV, the small CSV, Parquet → Parquet, and
  CSV with --log (generated ids: the file has no id column)

Prints, per run: wall seconds (the whole command: imports, model load, read, validate,
predict, write; the median of --repeat runs, after one discarded warm-up run per tool), rows/s
over that wall time, mlrig's own scoring time (read → write after start-up, as it prints it),
peak RSS of the command and all its children (getrusage of a wrapper process; the largest of
the runs), and the ratio of wall rows/s to mlflow's. Peak RSS at ROWS vs ROWS/10 shows
whether memory stays flat with input size. A second table splits each tool's time into
start-up (the 1,000-row run) and per-row throughput ((ROWS − 1,000) ÷ the difference in wall
time): start-up is mostly the imports both tools share, so the whole-command ratio understates
the per-row one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
# Runs a command and prints the peak RSS (KB) of all its descendants: mlflow may fork.
_WRAPPER = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(r.returncode)"
)
TINY = 1_000  # rows of the start-up run: what each tool costs before the first row
_SCORED = re.compile(r"in ([\d.]+) s \(([\d,]+) rows/s")


def _write_inputs(tmp: Path, rows: int) -> dict[str, Path]:
    import numpy as np
    import pandas as pd

    from mlrig.data.ingest import embedded_path

    wines = pd.read_csv(embedded_path(), sep=";").drop(columns="quality")
    rng = np.random.default_rng(0)
    big = wines.iloc[rng.integers(0, len(wines), rows)].reset_index(drop=True)
    paths = {
        "csv": tmp / f"wine-{rows}.csv",
        "parquet": tmp / f"wine-{rows}.parquet",
        "small": tmp / f"wine-{rows // 10}.csv",
        "tiny": tmp / f"wine-{TINY}.csv",
    }
    big.to_csv(paths["csv"], index=False)
    big.to_parquet(paths["parquet"], index=False)
    big.head(rows // 10).to_csv(paths["small"], index=False)
    big.head(TINY).to_csv(paths["tiny"], index=False)
    return paths


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in KB, stderr) of ``cmd``."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *cmd],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} exited {done.returncode}: {done.stderr[-2000:]}")
    lines = done.stderr.strip().splitlines()
    return seconds, int(lines[-1]), "\n".join(lines[:-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is shown")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlrig-batch-bench-"))
    home = tmp / ".mlrig"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLRIG_", "MLFLOW_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    subprocess.run(
        [str(BIN / "mlrig"), "run", "--quiet", "--home", str(home)], check=True, env=env, cwd=tmp
    )
    inputs = _write_inputs(tmp, args.rows)
    small = args.rows // 10
    mlflow_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{home.resolve() / 'mlflow.db'}"}
    # no --quiet: mlrig's summary line (stderr) gives its own scoring time; no progress bar
    # is drawn when stderr is not a terminal
    mlrig = [str(BIN / "mlrig"), "predict", "--home", str(home)]
    mlflow = [
        str(BIN / "mlflow"),
        "models",
        "predict",
        "-m",
        "models:/wine-quality@champion",
        "-t",
        "csv",
        "--env-manager",
        "local",
    ]
    runs = [  # (tool, input label, rows, command, env)
        ("mlflow models predict", "CSV → JSON", TINY,
         [*mlflow, "-i", str(inputs["tiny"]), "-o", str(tmp / "mlflow-tiny.json")], mlflow_env),
        ("mlflow models predict", "CSV → JSON", args.rows,
         [*mlflow, "-i", str(inputs["csv"]), "-o", str(tmp / "mlflow-out.json")], mlflow_env),
        ("mlrig predict", "CSV → CSV", TINY,
         [*mlrig, str(inputs["tiny"]), "-o", str(tmp / "tiny-out.csv")], env),
        ("mlrig predict", "CSV → CSV", args.rows,
         [*mlrig, str(inputs["csv"]), "-o", str(tmp / "out.csv")], env),
        ("mlrig predict", "CSV → CSV", small,
         [*mlrig, str(inputs["small"]), "-o", str(tmp / "small-out.csv")], env),
        ("mlrig predict", "Parquet → Parquet", args.rows,
         [*mlrig, str(inputs["parquet"]), "-o", str(tmp / "out.parquet")], env),
        ("mlrig predict --log", "CSV → CSV", args.rows,
         [*mlrig, "--log", str(inputs["csv"]), "-o", str(tmp / "logged.csv")], env),
    ]  # fmt: skip
    # one discarded run per tool first: the first process after writing 1 GB of inputs pays
    # for cold page caches (MLflow's and scikit-learn's modules), which is not the tool's cost
    for _tool, _label, _rows, cmd, run_env in (runs[0], runs[2]):
        _run(cmd, run_env, tmp)
    results = []
    for tool, label, rows, cmd, run_env in runs:
        trials = sorted((_run(cmd, run_env, tmp) for _ in range(args.repeat)), key=lambda t: t[0])
        seconds, _, stderr = trials[len(trials) // 2]  # the median wall time
        scored = _SCORED.search(stderr)
        results.append(
            {
                "tool": tool,
                "input": label,
                "rows": rows,
                "seconds": seconds,
                "rows_per_s": rows / seconds,
                "scoring_s": float(scored.group(1)) if scored else None,
                "scoring_rows_per_s": int(scored.group(2).replace(",", "")) if scored else None,
                "peak_rss_mb": max(t[1] for t in trials) / 1024,
            }
        )
        print(f"  {tool} {label} {rows:,} rows: {seconds:.1f} s", file=sys.stderr)
    base = results[1]["rows_per_s"]
    print(
        "| tool | input | rows | seconds | rows/s | scoring s (rows/s) | peak RSS | ÷ mlflow |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    for r in results:
        scoring = (
            f"{r['scoring_s']:.2f} ({r['scoring_rows_per_s']:,})"
            if r["scoring_s"] is not None
            else "—"
        )
        print(
            f"| {r['tool']} | {r['input']} | {r['rows']:,} | {r['seconds']:.1f} | "
            f"{r['rows_per_s']:,.0f} | {scoring} | {r['peak_rss_mb']:,.0f} MB | "
            f"{r['rows_per_s'] / base:.1f}× |"
        )
    # Start-up is a fixed cost both tools pay (MLflow, scikit-learn, skops imports); what a row
    # costs is the difference between the large run and the 1,000-row run.
    print()
    print("| tool | start-up (1,000-row run) | per-row rows/s ((N − 1,000) ÷ Δs) | ÷ mlflow |")
    print("|---|---|---|---|")
    marginal = {}
    for tool, tiny, big in (
        ("mlflow models predict", results[0], results[1]),
        ("mlrig predict", results[2], results[3]),
    ):
        delta = big["seconds"] - tiny["seconds"]
        marginal[tool] = (big["rows"] - tiny["rows"]) / delta if delta > 0.05 else None
    for tool, tiny in (("mlflow models predict", results[0]), ("mlrig predict", results[2])):
        rate, anchor = marginal[tool], marginal["mlflow models predict"]
        shown = f"{rate:,.0f}" if rate else "— (within start-up noise)"
        ratio = f"{rate / anchor:.1f}×" if rate and anchor else "—"
        print(f"| {tool} | {tiny['seconds']:.1f} s | {shown} | {ratio} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
