"""Benchmark: what team mode costs, side by side in one run.

    python bench/team.py [--rounds 3] [--duration 5]

1. `mlrig run` on the embedded default (SQLite + a local folder) vs through `mlrig server`
   (MLflow's tracking server on PostgreSQL, artifacts proxied to an S3-compatible store,
   `rclone serve s3`), rounds alternating; medians and the ratio.
2. `mlrig serve` (one worker, `/invocations`, one row per request, wrk) logging to SQLite vs
   PostgreSQL vs PostgreSQL stopped (the local spool answers); then PostgreSQL starts again,
   the spool drains, and the rows stored are compared with the requests acknowledged.

Starts its own PostgreSQL cluster, S3 store and servers in a temp dir (tests/services.py, the
same throwaway services the tests use). Never run it alongside tests or another benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from serving import COLUMNS, LUA, ROW, _wrk  # noqa: E402  (bench/serving.py, beside this file)
from tests.conftest import wait_http  # noqa: E402
from tests.services import PgCluster, S3Store, free_port, fresh_database  # noqa: E402

BIN = Path(sys.executable).parent
EMBEDDED, TEAM = "embedded (SQLite + folder)", "mlrig server (PostgreSQL + S3)"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLRIG_", "MLFLOW_", "AWS_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def _timed_run(home: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "mlrig"), "run", "--quiet", "--home", str(home)],
        env=env, cwd=home.parent, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"mlrig run failed: {done.stderr[-2000:]}")
    return time.perf_counter() - start


def _spooled_rows(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("mlrig_spool_rows "):
            return float(line.split()[1])
    raise RuntimeError("mlrig_spool_rows missing from /metrics")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="`mlrig run` rounds per setup")
    parser.add_argument("--duration", type=int, default=5, help="seconds per serving cell")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlrig-team-bench-"))
    tmp.chmod(0o755)  # the postgres user must reach its cluster below
    pg, s3 = PgCluster(tmp / "pg"), S3Store(tmp / "s3")
    pg.start()
    s3.start()
    procs: list[subprocess.Popen[bytes]] = []
    times: dict[str, list[float]] = {EMBEDDED: [], TEAM: []}
    serving: dict[tuple[str, int], dict[str, float]] = {}
    try:
        # 1. training: embedded vs through mlrig server
        port = free_port()
        server = _start(
            [str(BIN / "mlrig"), "server", "--home", str(tmp / "server" / ".mlrig"),
             "--port", str(port), "--artifacts-destination", s3.bucket("mlflow") + "/artifacts"],
            _env(MLFLOW_BACKEND_STORE_URI=fresh_database(pg.url, "mlflow"), **s3.env),
            tmp / "server.log",
        )  # fmt: skip
        procs.append(server)
        tracking = f"http://127.0.0.1:{port}"
        wait_http(
            f"{tracking}/health", server, 120, lambda: (tmp / "server.log").read_text()[-2000:]
        )
        homes = {EMBEDDED: tmp / "embedded" / ".mlrig", TEAM: tmp / "team" / ".mlrig"}
        envs = {EMBEDDED: _env(), TEAM: _env(MLFLOW_TRACKING_URI=tracking)}
        for h in homes.values():
            h.parent.mkdir(parents=True)
        for _ in range(args.rounds):
            for name in (EMBEDDED, TEAM):
                times[name].append(_timed_run(homes[name], envs[name]))
        objects = sum(1 for p in (s3.data / "mlflow").rglob("*") if p.is_file())
        _stop(server)

        # 2. serving: the log on SQLite vs PostgreSQL vs PostgreSQL down (the spool answers)
        lua, one = tmp / "post.lua", tmp / "one.json"
        lua.write_text(LUA)
        one.write_text(json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [ROW]}}))
        store_url = fresh_database(pg.url, "predictions")
        for label, extra in (("SQLite", {}), ("PostgreSQL", {"MLRIG_PREDICTIONS_URL": store_url})):
            sport = free_port()
            srv = _start(
                [str(BIN / "mlrig"), "serve", "--home", str(homes[EMBEDDED]), "--port", str(sport)],
                _env(**extra),
                tmp / f"serve-{label}.log",
            )
            procs.append(srv)
            url = f"http://127.0.0.1:{sport}"
            wait_http(f"{url}/ready", srv, 120, lambda: "")
            for conns in (1, 8):
                _wrk(f"{url}/invocations", one, conns, 1, lua)  # warm-up
                serving[(label, conns)] = _wrk(f"{url}/invocations", one, conns, args.duration, lua)
            if label == "PostgreSQL":
                from mlrig.predictions.store import PredictionStore

                store = PredictionStore(store_url)
                before = store.count()
                pg.stop()
                acked = 0
                for conns in (1, 8):
                    r = _wrk(f"{url}/invocations", one, conns, args.duration, lua)
                    serving[("PostgreSQL down: spool", conns)] = r
                    acked += int(r["requests"] - r["errors"])
                spooled = _spooled_rows(url)
                pg.start()
                t0 = time.perf_counter()
                while _spooled_rows(url) > 0 and time.perf_counter() - t0 < 300:
                    time.sleep(0.2)
                drained = time.perf_counter() - t0
                stored = store.count() - before
                store.close()
            _stop(srv)
    finally:
        for p in procs:
            _stop(p)
        s3.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nTeam-mode benchmark — {os.cpu_count()} cores, one run, {args.rounds} rounds\n")
    print("| `mlrig run` against | median s | ratio | rounds (s) |")
    print("|---|---|---|---|")
    base = statistics.median(times[EMBEDDED])
    for name, values in times.items():
        med = statistics.median(values)
        rounds = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {med:.2f} | {med / base:.2f}× | {rounds} |")
    print(
        f"\nThe tracking server wrote {objects} objects to the S3 store; the client held no keys.\n"
    )
    print("| `mlrig serve` logging to | conns | req/s | p50 ms | p99 ms | non-2xx |")
    print("|---|---|---|---|---|---|")
    for (label, conns), r in serving.items():
        print(
            f"| {label} | {conns} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
            f"| {int(r['errors'])} |"
        )
    print(
        f"\nWhile PostgreSQL was down: {acked:,} requests acknowledged, {spooled:,.0f} rows in the "
        f"spool when it came back; drained in {drained:.1f} s; {stored:,} rows stored during and "
        f"after the outage (≥ acknowledged: wrk drops requests still in flight when it stops)."
    )


if __name__ == "__main__":
    main()
