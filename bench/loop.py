"""The closed loop's speed: from the trigger to the new version serving, split by step.

Setup, once: a home trained on red wine (ElasticNet alpha 0.01, as `make demo-loop`), then
--rows white-wine predictions with feedback written through the real prediction store (drift
and degradation). Each round works on a fresh copy of that home with `mlrig serve` running on
it (registry poll every 0.5 s):

- **loop**: a new process runs one pass (`loop_pass`, what a scheduled run executes), timed per
  step: process start and imports, monitor, policy, production rows (the retrain's data
  assembly), load + validate + prepare, fit, evaluate, score champion, log + register, promote;
  then the server swap, from the promotion to the first `/health` naming the new version.
- **mlrig run**: a plain training run in a new process on a copy of the same home, for scale.

Medians of --rounds rounds, all in one run. Run alone: `python bench/loop.py` (never alongside
tests or another benchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
MODEL = "wine-quality"
ENV = {"MLRIG_TRAIN__ALPHA": "0.01", "MLRIG_LOOP__COOLDOWN": "1s"}


def worker(home: str) -> None:
    """One pass in this (fresh) process; prints its timings as JSON."""
    t_imports = time.time()
    from mlrig.config import load_settings
    from mlrig.pipeline.loop import loop_pass

    marks: dict[str, float] = {}
    settings = load_settings(None, {"home": home})
    t_ready = time.time()
    result = loop_pass(settings, on_step=lambda s: marks.setdefault(s, time.time()))
    seconds = {s["step"]: s["seconds"] for s in result.steps}
    out = {
        "imports": t_ready - t_imports,
        "outcome": result.outcome,
        "version": result.version,
        "steps": seconds,
        "promoted_at": marks.get("promote", 0.0) + seconds.get("promote", 0.0),
    }
    print(json.dumps(out))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, **ENV, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def template(root: Path, rows: int) -> Path:
    import numpy as np
    import pandas as pd

    home = root / "template"
    done = subprocess.run(
        [str(BIN / "mlrig"), "run", "--home", str(home), "--quiet"], env=_env(), capture_output=True
    )
    assert done.returncode == 0, done.stderr
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.conftest import log_traffic, prediction_store, predictor_of

    from mlrig.data.ingest import embedded_path

    white = pd.read_csv(embedded_path().with_name("winequality-white.csv"), sep=";")
    white = white.sample(rows, replace=rows > len(white), random_state=0)
    store = prediction_store(home)
    log_traffic(store, predictor_of(home), white, white["quality"].to_numpy(np.float64), 10)
    store.close()
    return home


class Watch(threading.Thread):
    """Polls /health; records when the served version first differs from ``start``."""

    def __init__(self, url: str, start: str) -> None:
        super().__init__(daemon=True)
        self.url, self.start_version = url, start
        self.seen_at: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5) as c:
            while not self.stop.is_set() and self.seen_at is None:
                try:
                    if str(c.get(self.url).json().get("version")) != self.start_version:
                        self.seen_at = time.time()
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)


def one_round(tpl: Path, root: Path, i: int) -> dict[str, float]:
    home = root / f"round-{i}"
    shutil.copytree(tpl, home)
    port = _port()
    server = subprocess.Popen(
        [str(BIN / "mlrig"), "serve", "--home", str(home), "--port", str(port),
         "--poll-interval", "0.5"],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/health"
        deadline = time.time() + 120
        while True:
            try:
                version = str(httpx.get(url, timeout=2).json()["version"])
                break
            except (httpx.HTTPError, KeyError):
                if time.time() > deadline:
                    raise SystemExit("server did not start") from None
                time.sleep(0.3)
        watch = Watch(url, version)
        watch.start()
        t0 = time.time()
        done = subprocess.run(
            [sys.executable, __file__, "--worker", str(home)],
            env=_env(), capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout.strip().splitlines()[-1])
        assert out["outcome"] == "promoted", out
        watch.join(30)
        assert watch.seen_at is not None, "the server never reported the new version"
    finally:
        server.terminate()
        server.wait(30)
    steps = out["steps"]
    row = {
        "process start + imports": out["imports"],
        "monitor": steps["monitor"],
        "policy": steps["policy"],
        "retrain data assembly (production rows)": steps["retrain: production rows"],
        "load + validate + prepare": sum(
            steps[f"retrain: {s}"] for s in ("load", "validate", "prepare")
        ),
        "fit": steps["retrain: train"],
        "evaluate (+ plots)": steps["retrain: evaluate"],
        "gate (score champion)": steps["retrain: score champion"],
        "log + register": steps["retrain: log + register"],
        "promote": steps["promote"],
        "server swap (promote → /health)": max(0.0, watch.seen_at - out["promoted_at"]),
        "trigger → new version serving": watch.seen_at - t0,
    }
    t1 = time.time()
    run_home = root / f"run-{i}"
    shutil.copytree(tpl, run_home)
    subprocess.run(
        [str(BIN / "mlrig"), "run", "--home", str(run_home), "--quiet"], env=_env(), check=True,
        capture_output=True,
    )  # fmt: skip
    row["(same run) mlrig run, cold"] = time.time() - t1
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description="closed-loop speed")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", type=int, default=3000, help="white-wine predictions with feedback")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker)
        return
    root = Path(tempfile.mkdtemp(prefix="mlrig-bench-loop-"))
    try:
        tpl = template(root, args.rows)
        rounds = [one_round(tpl, root, i) for i in range(args.rounds)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"\n{args.rows} white-wine predictions with feedback, {args.rounds} rounds (medians, s)\n"
    )
    print("| step | median s | min s | max s |")
    print("|---|---|---|---|")
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        print(
            f"| {key} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |"
        )


if __name__ == "__main__":
    main()
