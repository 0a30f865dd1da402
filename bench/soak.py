"""Soak: `mlrig serve` under a fixed request rate for minutes — memory flat, p99 stable, and
every acknowledged prediction in the store exactly once.

    python bench/soak.py [--seconds 600] [--rate 200] [--json]

Trains a champion in a temporary home (or reuses ``--home``), starts `mlrig serve` on
127.0.0.1 and sends single-row `/predict` requests, each with its own client id, on an
open-loop schedule (a slow answer does not slow the sender; at most ``--inflight`` requests are
outstanding). Every interval it samples the server's RSS and the latency of the requests that
completed in it. At the end it stops the server cleanly and reads the prediction log back:
every id answered 200 must be there exactly once. Prints one row per interval and a verdict;
``--json`` prints the summary as JSON (the CI test reads it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from serving import COLUMNS  # bench/serving.py, beside this file
from serving import ROW as VALUES

BIN = Path(sys.executable).parent
ROW = dict(zip(COLUMNS, VALUES, strict=True))  # the seeds' first red-wine row


@dataclass
class Interval:
    """What happened in one sampling interval."""

    start: float
    sent: int = 0
    ok: int = 0
    shed: int = 0  # 503: the server said it could not keep up (allowed, never acknowledged)
    failed: int = 0  # anything else: a 5xx, a 4xx, a transport error
    latencies_ms: list[float] = field(default_factory=list)
    rss_mb: float = 0.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLRIG_", "MLFLOW_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _serve(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    proc = subprocess.Popen(
        [str(BIN / "mlrig"), "serve", "--home", str(home), "--port", str(port)],
        env=_env(),
        start_new_session=True,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlrig serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("mlrig serve did not become ready in 120 s")


async def _load(
    url: str, pid: int, seconds: float, rate: float, inflight: int, every: float
) -> tuple[list[Interval], list[str]]:
    """Send ``rate`` requests/s for ``seconds``; returns the intervals and the acknowledged ids."""
    intervals: list[Interval] = []
    acknowledged: list[str] = []
    gate = asyncio.Semaphore(inflight)
    limits = httpx.Limits(max_connections=inflight, max_keepalive_connections=inflight)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(i: int, box: Interval) -> None:
            rid = f"soak-{i}"
            body = {"id": rid, **ROW, "alcohol": 9.0 + (i % 50) / 10}
            t0 = time.perf_counter()
            try:
                r = await client.post(url, json=body)
            except httpx.HTTPError:
                box.failed += 1
                return
            finally:
                gate.release()
            ms = (time.perf_counter() - t0) * 1000
            if r.status_code == 200:
                box.ok += 1
                box.latencies_ms.append(ms)
                acknowledged.append(rid)
            elif r.status_code == 503:
                box.shed += 1
            else:
                box.failed += 1

        start = time.perf_counter()
        tasks: set[asyncio.Task[None]] = set()
        box = Interval(0.0)
        intervals.append(box)
        i = 0
        while (now := time.perf_counter() - start) < seconds:
            if now >= box.start + every:
                box.rss_mb = _rss_mb(pid)
                box = Interval(box.start + every)
                intervals.append(box)
            due = start + i / rate
            if due > time.perf_counter():
                await asyncio.sleep(due - time.perf_counter())
            await gate.acquire()
            box.sent += 1
            task = asyncio.create_task(one(i, box))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        await asyncio.gather(*tasks)
        box.rss_mb = _rss_mb(pid)
    return intervals, acknowledged


def _stored(home: Path, sent: list[str]) -> tuple[set[str], int]:
    """Which of the ``sent`` ids the log holds, and how many rows it holds (a retried id would
    count twice). Asks the store by id: rebuilding a frame of every row costs minutes."""
    from mlrig.predictions.store import PredictionStore

    store = PredictionStore(f"sqlite:///{home / 'predictions.db'}")
    try:
        missing = set(store.missing_ids("wine-quality", sent))
        rows = store.count()
    finally:
        store.close()
    return set(sent) - missing, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rate", type=float, default=200, help="requests per second")
    parser.add_argument("--inflight", type=int, default=64, help="most outstanding requests")
    parser.add_argument("--every", type=float, default=0, help="seconds per row (default: 1/10)")
    parser.add_argument("--home", type=Path, help="a trained mlrig home to copy (default: train)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    every = args.every or max(args.seconds / 10, 1.0)

    tmp = Path(tempfile.mkdtemp(prefix="mlrig-soak-"))
    home = tmp / ".mlrig"
    if args.home:
        shutil.copytree(args.home, home)
    else:
        subprocess.run(
            [str(BIN / "mlrig"), "run", "--quiet", "--home", str(home)], check=True, env=_env()
        )
    port = _port()
    proc = _serve(home, port, tmp / "serve.log")
    try:
        intervals, acknowledged = asyncio.run(
            _load(
                f"http://127.0.0.1:{port}/predict",
                proc.pid,
                args.seconds,
                args.rate,
                args.inflight,
                every,
            )
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    sent = [f"soak-{i}" for i in range(sum(iv.sent for iv in intervals))]
    soak, rows = _stored(home, sent)
    duplicates = rows - len(soak)  # the home's log starts empty: every row is one of ours
    lost = len(set(acknowledged) - soak)

    rows = [iv for iv in intervals if iv.sent]
    warm = rows[1:] or rows  # the first interval includes the server's warm-up
    rss = [iv.rss_mb for iv in warm]
    p99s = [_pct(iv.latencies_ms, 0.99) for iv in warm if iv.latencies_ms]
    summary = {
        "seconds": args.seconds,
        "rate": args.rate,
        "cores": os.cpu_count(),
        "sent": sum(iv.sent for iv in intervals),
        "acknowledged": len(acknowledged),
        "shed_503": sum(iv.shed for iv in intervals),
        "failed": sum(iv.failed for iv in intervals),
        "stored": len(soak),
        "lost": lost,
        "duplicates": duplicates,
        "rss_first_mb": round(rss[0], 1),
        "rss_last_mb": round(rss[-1], 1),
        "rss_max_mb": round(max(rss), 1),
        "p99_first_ms": round(p99s[0], 2) if p99s else None,
        "p99_last_ms": round(p99s[-1], 2) if p99s else None,
        "p99_median_ms": round(statistics.median(p99s), 2) if p99s else None,
        "p50_ms": round(_pct([x for iv in intervals for x in iv.latencies_ms], 0.5), 2),
    }
    shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(summary))
        return
    print(
        f"\nSoak — `mlrig serve` on 127.0.0.1, {args.rate:g} req/s single-row /predict for "
        f"{args.seconds:g} s, {os.cpu_count()} cores\n"
    )
    print("| t (s) | sent | 200 | 503 | failed | p50 ms | p99 ms | server RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for iv in rows:
        print(
            f"| {iv.start:.0f} | {iv.sent:,} | {iv.ok:,} | {iv.shed} | {iv.failed} | "
            f"{_pct(iv.latencies_ms, 0.5):.1f} | {_pct(iv.latencies_ms, 0.99):.1f} | "
            f"{iv.rss_mb:.0f} |"
        )
    print(
        f"\nacknowledged {summary['acknowledged']:,}, in the store {summary['stored']:,}, "
        f"lost {lost}, duplicated {duplicates}; RSS {summary['rss_first_mb']} → "
        f"{summary['rss_last_mb']} MB (max {summary['rss_max_mb']}); p99 first/median/last "
        f"interval {summary['p99_first_ms']}/{summary['p99_median_ms']}/{summary['p99_last_ms']} ms"
    )


if __name__ == "__main__":
    main()
