"""Benchmark: `mlrig run` cold (a new process) against plain scripts doing the same work.

Each command runs in a fresh process on its own store, which is created once by a warm-up run
(so store creation is not timed); the rounds alternate between commands so machine noise hits
all of them alike. Prints medians and the ratio to the plain MLflow script.

    python bench/pipeline.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLRIG_", "MLFLOW_")) and k != "PREFECT_API_URL"
    }
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlrig-bench-"))
    commands = {
        "plain sklearn script (no tracking)": [
            sys.executable,
            str(HERE / "plain_mlflow.py"),
            str(tmp / "none"),
            "--no-mlflow",
        ],
        "plain MLflow script (explicit pip reqs)": [
            sys.executable,
            str(HERE / "plain_mlflow.py"),
            str(tmp / "plain"),
        ],
        "mlrig run (local mode)": [
            str(BIN / "mlrig"),
            "run",
            "--quiet",
            "--home",
            str(tmp / "mlrig"),
        ],
        "mlrig run, evaluation plots off": [
            "env",
            "MLRIG_TRAIN__PLOTS=false",
            str(BIN / "mlrig"),
            "run",
            "--quiet",
            "--home",
            str(tmp / "mlrig-noplots"),
        ],
    }
    for argv in commands.values():  # warm-up: creates each store and fills OS caches
        subprocess.run(argv, check=True, capture_output=True, env=_env(), cwd=tmp)
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(args.rounds):
        for label, argv in commands.items():
            t0 = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, env=_env(), cwd=tmp)
            times[label].append(time.perf_counter() - t0)
    base = statistics.median(times["plain MLflow script (explicit pip reqs)"])
    print(
        f"\n`mlrig run` cold vs plain scripts — {args.rounds} alternating rounds, {os.cpu_count()} cores\n"
    )
    print("| command | median s | min s | max s | × plain MLflow |")
    print("|---|---|---|---|---|")
    for label, values in times.items():
        med = statistics.median(values)
        print(f"| {label} | {med:.2f} | {min(values):.2f} | {max(values):.2f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
