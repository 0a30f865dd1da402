"""Benchmark: `mlflow models serve` vs `mlrig serve` (every prediction durably logged) vs a bare
FastAPI endpoint on MLflow's `/invocations`, and MLServer vs `mlrig serve` on the Open Inference
Protocol (V2), on the same model and machine, driven by wrk over loopback.

    python bench/serving.py [--duration 5] [--repeat 1] [--no-mlserver]

Trains a champion in a temporary home, starts the servers side by side (one process each,
access logs off), then loads one at a time: single-row requests at 1, 8 and 32 connections and
1,000-row batches at 1 and 8 on `/invocations`; V2 single rows at 1, 8 and 32 and 1,000 rows at
1 against MLServer and mlrig's `/v2/models/wine-quality/infer` (columnar: one FP64 input per
feature). Each cell runs ``--repeat`` times and reports the median. Prints req/s, rows/s, p50,
p99; mlrig's ratios; mlrig's per-stage breakdown read from its /metrics
(``mlrig_request_stage_seconds``) around each cell; and the issue-11 targets, met or not.

MLServer (``mlserver`` + ``mlserver-mlflow``) lives in its own virtualenv,
~/.cache/mlrig-bench/mlserver-venv, created on first use with this environment's mlflow,
scikit-learn and skops versions (the model is a skops file: it loads only with the same
scikit-learn). It serves the registered model's local copy with ``parallel_workers: 0`` (one
process, like the others), gRPC and metrics on ports nobody uses.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
MLSERVER_VENV = Path.home() / ".cache" / "mlrig-bench" / "mlserver-venv"
MLSERVER_VERSION = "1.7.1"
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
STAGES = ("parse", "turn", "predict", "handoff", "commit", "wake", "answer")
MLFLOW, MLRIG, BARE, MLSERVER = "mlflow models serve", "mlrig serve", "bare FastAPI", "MLServer"
V1, V2 = "/invocations", "/v2/models/wine-quality/infer"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _v1_body(n: int) -> dict[str, object]:
    return {"dataframe_split": {"columns": COLUMNS, "data": [ROW] * n}}


def _v2_body(n: int) -> dict[str, object]:
    """The columnar V2 form: one FP64 input tensor of shape [n] per feature."""
    inputs = [
        {"name": c, "datatype": "FP64", "shape": [n], "data": [v] * n}
        for c, v in zip(COLUMNS, ROW, strict=True)
    ]
    return {"inputs": inputs}


def _wait(url: str, body: dict[str, object], proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited {proc.returncode}")
        try:
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


def _stage_totals(port: int) -> dict[str, tuple[float, float]]:
    """{stage: (requests, seconds)} from mlrig's /metrics, plus "request" (handler latency
    over every prediction endpoint)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found: dict[str, list[float]] = {}
    pattern = r'^mlrig_request_stage_seconds_(count|sum)\{stage="(\w+)"\} (\S+)'
    for kind, stage, value in re.findall(pattern, text, re.M):
        found.setdefault(stage, [0.0, 0.0])[kind == "sum"] = float(value)
    latency = r"^mlrig_request_latency_seconds_(count|sum)\{[^}]*\} (\S+)"
    total = found.setdefault("request", [0.0, 0.0])
    for kind, value in re.findall(latency, text, re.M):
        total[kind == "sum"] += float(value)
    return {k: (v[0], v[1]) for k, v in found.items()}


def _per_request_us(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float]:
    out = {}
    for stage, (count, seconds) in after.items():
        n = count - before.get(stage, (0.0, 0.0))[0]
        s = seconds - before.get(stage, (0.0, 0.0))[1]
        out[stage] = s / n * 1e6 if n else float("nan")
    return out


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _mlserver_python() -> Path:
    """The MLServer virtualenv's python, created (≈2 min) when missing."""
    python = MLSERVER_VENV / "bin" / "python"
    if (MLSERVER_VENV / "bin" / "mlserver").exists():
        return python
    print(f"creating {MLSERVER_VENV} (mlserver {MLSERVER_VERSION}) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
    pins = [
        f"mlserver=={MLSERVER_VERSION}",
        f"mlserver-mlflow=={MLSERVER_VERSION}",
        f"mlflow=={version('mlflow')}",
        f"scikit-learn=={version('scikit-learn')}",
        f"skops=={version('skops')}",
    ]
    subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True)
    return python


def _mlserver_dir(tmp: Path, uri: str, ports: tuple[int, int, int]) -> Path:
    """An MLServer model repository serving the champion's local copy as "wine-quality"."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    model = mlflow.artifacts.download_artifacts(
        artifact_uri="models:/wine-quality@champion", dst_path=str(tmp / "mlserver-model")
    )
    root = tmp / "mlserver"
    (root / "wine-quality").mkdir(parents=True)
    http, grpc, metrics = ports
    settings = {
        "host": "127.0.0.1",
        "http_port": http,
        "grpc_port": grpc,
        "metrics_port": metrics,
        "metrics_endpoint": None,
        "parallel_workers": 0,
        "debug": False,
    }
    (root / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": "wine-quality",
        "implementation": "mlserver_mlflow.MLflowRuntime",
        "parameters": {"uri": model},
    }
    (root / "wine-quality" / "model-settings.json").write_text(json.dumps(model_settings))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=5, help="seconds per cell")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell (median)")
    parser.add_argument("--no-mlserver", action="store_true", help="skip the V2 anchor")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlrig-serve-bench-"))
    home = tmp / ".mlrig"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLRIG_", "MLFLOW_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # mlflow execs uvicorn by name
    subprocess.run(
        [str(BIN / "mlrig"), "run", "--quiet", "--home", str(home)], check=True, env=env, cwd=tmp
    )
    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"

    names = [MLFLOW, MLRIG, BARE] + ([] if args.no_mlserver else [MLSERVER])
    ports = {name: _port() for name in names}
    cmds = {
        MLFLOW: [
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
            str(ports[MLFLOW]),
        ],
        MLRIG: [str(BIN / "mlrig"), "serve", "--home", str(home), "--port", str(ports[MLRIG])],
        BARE: [
            str(BIN / "uvicorn"),
            "bare_fastapi:app",
            "--app-dir",
            str(HERE),
            "--port",
            str(ports[BARE]),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
    }
    if not args.no_mlserver:
        try:
            python = _mlserver_python()
            repo = _mlserver_dir(tmp, uri, (ports[MLSERVER], _port(), _port()))
            cmds[MLSERVER] = [str(python.parent / "mlserver"), "start", str(repo)]
        except (subprocess.CalledProcessError, OSError) as exc:  # no index, no disk: no anchor
            print(f"MLServer not available ({exc}): its cells read n/a", file=sys.stderr)
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
    bodies = {}
    for proto, make in ((V1, _v1_body), (V2, _v2_body)):
        for n in (1, 1000):
            path = tmp / f"{'v1' if proto == V1 else 'v2'}-{n}.json"
            path.write_text(json.dumps(make(n)))
            bodies[(proto, n)] = path
    # (protocol, label, rows, conns, servers)
    cells = [(V1, "1 row", 1, c, [MLFLOW, MLRIG, BARE]) for c in (1, 8, 32)]
    cells += [(V1, "1,000 rows", 1000, c, [MLFLOW, MLRIG, BARE]) for c in (1, 8)]
    if not args.no_mlserver:
        cells += [(V2, "V2 1 row", 1, c, [MLSERVER, MLRIG]) for c in (1, 8, 32)]
        cells += [(V2, "V2 1,000 rows", 1000, 1, [MLSERVER, MLRIG])]
    results: dict[tuple[str, str, int], dict[str, float] | None] = {}
    stages: dict[tuple[str, int], dict[str, float]] = {}
    try:
        up = set()
        for name in procs:
            proto = V2 if name == MLSERVER else V1
            body = _v2_body(1) if proto == V2 else _v1_body(1)
            try:
                _wait(f"http://127.0.0.1:{ports[name]}{proto}", body, procs[name], 180)
            except RuntimeError as exc:
                if name != MLSERVER:
                    raise
                print(f"MLServer did not start ({exc}): its cells read n/a", file=sys.stderr)
                continue
            up.add(name)
        v2_ready = (
            httpx.post(f"http://127.0.0.1:{ports[MLRIG]}{V2}", json=_v2_body(1)).status_code == 200
        )
        for proto, label, rows, conns, servers in cells:
            for name in servers:
                if name not in up or (name == MLRIG and proto == V2 and not v2_ready):
                    results[(name, label, conns)] = None  # not running, or no V2 route here
                    continue
                url = f"http://127.0.0.1:{ports[name]}{proto}"
                body = bodies[(proto, rows)]
                _wrk(url, body, conns, 1, lua)  # warm-up
                before = _stage_totals(ports[MLRIG]) if name == MLRIG else {}
                runs = [_wrk(url, body, conns, args.duration, lua) for _ in range(args.repeat)]
                if name == MLRIG:
                    stages[(label, conns)] = _per_request_us(before, _stage_totals(ports[MLRIG]))
                results[(name, label, conns)] = _median(runs)
    finally:
        for p in procs.values():
            os.killpg(p.pid, signal.SIGTERM)
    from mlrig.predictions.store import PredictionStore

    log_url = f"sqlite:///{home / 'predictions.db'}"
    logged = f"{PredictionStore(log_url).count():,}"
    _report(args, cells, results, stages, logged)


def _report(
    args: argparse.Namespace,
    cells: list[tuple[str, str, int, int, list[str]]],
    results: dict[tuple[str, str, int], dict[str, float] | None],
    stages: dict[tuple[str, int], dict[str, float]],
    logged: str,
) -> None:
    repeat = f", median of {args.repeat} runs" if args.repeat > 1 else ""
    print(
        f"\nServing benchmark — wrk on 127.0.0.1, {args.duration} s per cell{repeat}, "
        f"{os.cpu_count()} cores, 1 process each; mlrig logged {logged} predictions durably\n"
    )
    print("| request | conns | server | req/s | rows/s | p50 ms | p99 ms | non-2xx |")
    print("|---|---|---|---|---|---|---|---|")
    for _proto, label, rows, conns, servers in cells:
        for name in servers:
            r = results[(name, label, conns)]
            if r is None:
                print(f"| {label} | {conns} | {name} | n/a | n/a | n/a | n/a | n/a |")
                continue
            print(
                f"| {label} | {conns} | {name} | {r['rps']:,.0f} | {r['rps'] * rows:,.0f} | "
                f"{r['p50']:.1f} | {r['p99']:.1f} | {r['errors']:.0f} |"
            )

    def ratio(label: str, conns: int, other: str) -> float | None:
        mine, theirs = results.get((MLRIG, label, conns)), results.get((other, label, conns))
        return None if mine is None or theirs is None else mine["rps"] / theirs["rps"]

    print(
        "\n| request | conns | mlrig ÷ mlflow (req/s) | mlrig ÷ bare FastAPI | mlrig ÷ MLServer |"
    )
    print("|---|---|---|---|---|")
    for _proto, label, _rows, conns, servers in cells:
        cols = []
        for other, fmt in ((MLFLOW, "{:.1f}×"), (BARE, "{:.0%}"), (MLSERVER, "{:.1f}×")):
            value = ratio(label, conns, other) if other in servers else None
            cols.append(
                "" if other not in servers else ("n/a" if value is None else fmt.format(value))
            )
        print(f"| {label} | {conns} | " + " | ".join(cols) + " |")

    print(
        "\nmlrig per-stage breakdown — µs per request, from mlrig_request_stage_seconds "
        "(a stage shared by a group of requests counts once for each; 'request' is the "
        "handler's whole time, HTTP parsing and sending excluded)\n"
    )
    print("| request | conns | " + " | ".join(STAGES) + " | stages sum | request |")
    print("|---|---|" + "---|" * (len(STAGES) + 2))
    for (label, conns), us in stages.items():
        parts = [f"{us.get(s, float('nan')):,.0f}" for s in STAGES]
        total = sum(us.get(s, 0.0) for s in STAGES)
        print(
            f"| {label} | {conns} | "
            + " | ".join(parts)
            + f" | {total:,.0f} | {us.get('request', float('nan')):,.0f} |"
        )

    one32, one1 = results.get((MLRIG, "1 row", 32)), ratio("1 row", 1, BARE)
    targets = [
        ("1 row, 32 conns: mlrig ≥ 60% of bare FastAPI", ratio("1 row", 32, BARE), 0.60, "{:.0%}"),
        ("1 row, 1 conn: mlrig ≥ 25% of bare FastAPI", one1, 0.25, "{:.0%}"),
        (
            "1 row, 32 conns: mlrig p99 ≤ 20 ms",
            None if one32 is None else one32["p99"],
            20.0,
            "{:.1f} ms",
        ),
        (
            "1,000 rows, 1 conn: mlrig ≥ 5× mlflow models serve",
            ratio("1,000 rows", 1, MLFLOW),
            5.0,
            "{:.1f}×",
        ),
    ]
    print("\n| target (issue 11) | measured | met |")
    print("|---|---|---|")
    for what, value, bound, fmt in targets:
        if value is None:
            print(f"| {what} | n/a | n/a |")
            continue
        met = value <= bound if "p99" in what else value >= bound
        print(f"| {what} | {fmt.format(value)} | {'yes' if met else 'no'} |")


if __name__ == "__main__":
    main()
