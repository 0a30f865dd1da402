"""Benchmark: `mlflow models serve` vs `mlrig serve` (every prediction durably logged) vs a bare
FastAPI endpoint, on the same model and machine, driven by wrk over loopback.

    python bench/serving.py [--duration 5]

Trains a champion in a temporary home, starts the three servers side by side (one worker
each, access logs off), then loads one at a time: single-row requests at 1, 8 and 32
connections and 1,000-row batches at 1 and 8, all on the MLflow `/invocations` protocol.
Prints req/s, rows/s, p50 and p99, and mlrig's ratios to the other two.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("MLRIG_BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
"""
ROW = [7.4, 0.7, 0.0, 1.9, 0.076, 11.0, 34.0, 0.9978, 3.51, 0.56, 9.4]
COLUMNS = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited {proc.returncode}")
        try:
            body = {"dataframe_split": {"columns": COLUMNS, "data": [ROW]}}
            if httpx.post(url, json=body, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not up in {timeout} s")


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk(url: str, body: Path, conns: int, duration: int, lua: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1" if conns < 8 else "2",
            "-c",
            str(conns),
            "-d",
            f"{duration}s",
            "--latency",
            "-s",
            str(lua),
            url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MLRIG_BENCH_BODY": str(body)},
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "errors": float(errors.group(1)) if errors else 0.0,
        "requests": done,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=5, help="seconds per cell")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlrig-serve-bench-"))
    home = tmp / ".mlrig"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLRIG_", "MLFLOW_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # mlflow execs uvicorn by name
    subprocess.run(
        [str(BIN / "mlrig"), "run", "--quiet", "--home", str(home)], check=True, env=env, cwd=tmp
    )
    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"

    ports = {name: _port() for name in ("mlflow models serve", "mlrig serve", "bare FastAPI")}
    cmds = {
        "mlflow models serve": [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            "models:/wine-quality@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(ports["mlflow models serve"]),
        ],
        "mlrig serve": [
            str(BIN / "mlrig"),
            "serve",
            "--home",
            str(home),
            "--port",
            str(ports["mlrig serve"]),
        ],
        "bare FastAPI": [
            str(BIN / "uvicorn"),
            "bare_fastapi:app",
            "--app-dir",
            str(HERE),
            "--port",
            str(ports["bare FastAPI"]),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
    }
    procs = {
        n: subprocess.Popen(
            c,
            env={**env, "MLFLOW_TRACKING_URI": uri},
            cwd=tmp,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n, c in cmds.items()
    }
    lua = tmp / "post.lua"
    lua.write_text(LUA)
    one = tmp / "one.json"
    one.write_text(json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [ROW]}}))
    batch = tmp / "batch.json"
    batch.write_text(json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [ROW] * 1000}}))
    results: dict[tuple[str, str, int], dict[str, float]] = {}
    try:
        for name, port in ports.items():
            _wait(f"http://127.0.0.1:{port}/invocations", procs[name])
        cells = [("1 row", one, 1, c) for c in (1, 8, 32)] + [
            ("1,000 rows", batch, 1000, c) for c in (1, 8)
        ]
        for label, body, _, conns in cells:
            for name, port in ports.items():
                url = f"http://127.0.0.1:{port}/invocations"
                _wrk(url, body, conns, 1, lua)  # warm-up
                results[(name, label, conns)] = _wrk(url, body, conns, args.duration, lua)
    finally:
        for p in procs.values():
            os.killpg(p.pid, signal.SIGTERM)
    from mlrig.predictions.store import PredictionStore

    log_url = f"sqlite:///{home / 'predictions.db'}"
    logged = f"{PredictionStore(log_url).count():,}"

    print(
        f"\nServing benchmark — wrk on 127.0.0.1, {args.duration} s per cell, {os.cpu_count()} cores, "
        f"1 worker each; mlrig logged {logged} predictions durably\n"
    )
    print("| request | conns | server | req/s | rows/s | p50 ms | p99 ms | non-2xx |")
    print("|---|---|---|---|---|---|---|---|")
    for label, _body, rows, conns in cells:
        for name in ports:
            r = results[(name, label, conns)]
            print(
                f"| {label} | {conns} | {name} | {r['rps']:,.0f} | {r['rps'] * rows:,.0f} | "
                f"{r['p50']:.1f} | {r['p99']:.1f} | {r['errors']:.0f} |"
            )
    print("\n| request | conns | mlrig ÷ mlflow (req/s) | mlrig ÷ bare FastAPI (req/s) |")
    print("|---|---|---|---|")
    for label, _, _, conns in cells:
        m = results[("mlrig serve", label, conns)]["rps"]
        print(
            f"| {label} | {conns} | {m / results[('mlflow models serve', label, conns)]['rps']:.1f}× | "
            f"{m / results[('bare FastAPI', label, conns)]['rps']:.0%} |"
        )


if __name__ == "__main__":
    main()
