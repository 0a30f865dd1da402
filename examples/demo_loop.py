"""The closed loop, end to end, on real components (`make demo-loop`).

Train on red wine → serve → red-wine traffic with feedback (no drift: the scheduled loop does
not retrain) → white-wine traffic with feedback → the scheduled loop finds drift and
degradation → retrains on the labelled production rows → the challenger is weighed against the
champion on the newest production rows → promoted if better → the running server swaps to it.
A load generator sends every request and its feedback throughout and counts failures.

Prints the timeline, in seconds after the first white-wine (drifted) request, and exits 1 when a
request failed or no new version was served before ``--timeout``. ``--json`` prints the
timeline as JSON instead (the e2e test reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent
MLRIG = str(BIN / "mlrig")

CONFIG = """\
# demo-loop compresses a day into minutes: each pass monitors the last {window} of traffic, a
# retrain learns from the labelled rows of the last {since} (plus the red-wine source), and
# the cool-down is shorter than the demo so a retrain that lost the gate can be tried again.
# A lightly regularised ElasticNet (the default alpha 0.5 keeps little more than the mean, which
# white wine barely moves) uses every feature, so the new population shows in its errors.
[train]
alpha = 0.01

[monitoring]
since = "{window}"

[loop]
since = "{since}"
cooldown = "{cooldown}"

[serving]
poll_interval = 1.0
"""


class Timeline:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self.drift_at: float | None = None
        self.lock = threading.Lock()

    def add(self, what: str, **detail: Any) -> None:
        with self.lock:
            self.events.append({"t": round(time.monotonic() - self.t0, 2), "event": what, **detail})
        if not QUIET:
            print(f"[{time.monotonic() - self.t0:7.1f} s] {what}", file=sys.stderr, flush=True)

    def relative(self) -> list[dict[str, Any]]:
        base = self.drift_at - self.t0 if self.drift_at is not None else 0.0
        return [{**e, "after_drift": round(e["t"] - base, 2)} for e in self.events]


QUIET = False


class Traffic(threading.Thread):
    """Sends ``rows`` rows per request at ``rate`` requests/s from the current population,
    then the feedback of each answered request; counts failures and versions served."""

    def __init__(self, url: str, timeline: Timeline, rate: float, rows: int, seed: int) -> None:
        super().__init__(daemon=True)
        import pandas as pd

        from mlrig.data.ingest import embedded_path

        data = embedded_path().parent
        self.populations = {
            c: pd.read_csv(data / f"winequality-{c}.csv", sep=";") for c in ("red", "white")
        }
        self.url, self.timeline, self.rate, self.rows = url, timeline, rate, rows
        self.population = "red"
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.sent = self.failed = self.feedback_failed = 0
        self.errors: list[str] = []
        self.versions: dict[str, float] = {}
        self.first_drifted: float | None = None

    def run(self) -> None:
        n = 0
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                frame = self.populations[self.population]
                picks = [self.rng.randrange(len(frame)) for _ in range(self.rows)]
                rows = frame.iloc[picks]
                if self.population == "white" and self.first_drifted is None:
                    self.first_drifted = time.monotonic()
                    self.timeline.drift_at = self.first_drifted
                    self.timeline.add("first white-wine (drifted) request")
                body = [
                    {"id": f"demo-{n}-{i}", **r}
                    for i, r in enumerate(rows.drop(columns="quality").to_dict("records"))
                ]
                n += 1
                self._send(client, body, rows["quality"].tolist())
                time.sleep(max(0.0, 1 / self.rate - (time.monotonic() - started)))

    def _send(self, client: httpx.Client, body: list[dict[str, Any]], actual: list[int]) -> None:
        self.sent += 1
        try:
            r = client.post(f"{self.url}/predict", json=body)
            if r.status_code != 200:
                raise RuntimeError(f"/predict {r.status_code}: {r.text[:200]}")
            answer = r.json()
            version = str(answer["version"])
            if version not in self.versions:
                self.versions[version] = time.monotonic()
                self.timeline.add(f"server answers with version {version}", version=version)
            fb = [{"id": p["id"], "actual": float(a)} for p, a in zip(body, actual, strict=True)]
            f = client.post(f"{self.url}/feedback", json=fb)
            if f.status_code != 200:
                self.feedback_failed += 1
                self.errors.append(f"/feedback {f.status_code}: {f.text[:200]}")
        except Exception as exc:  # a failed request is what the demo counts
            self.failed += 1
            self.errors.append(str(exc)[:300])


class Passes(threading.Thread):
    """Reports every loop pass the schedule records in the prediction store."""

    def __init__(self, url: str, model: str, timeline: Timeline) -> None:
        super().__init__(daemon=True)
        self.url, self.model, self.timeline = url, model, timeline
        self.stop = threading.Event()
        self.seen: list[dict[str, Any]] = []

    def run(self) -> None:
        from mlrig.predictions.passes import recent_passes
        from mlrig.predictions.store import PredictionStore

        store = PredictionStore(self.url)
        store.create_schema()
        known = 0
        while not self.stop.wait(0.5):
            try:
                found = list(reversed(recent_passes(store, self.model, 100)))
            except Exception:
                continue
            for p in found[known:]:
                result = json.loads(p.result)
                self.seen.append(result)
                gate = result.get("gate") or {}
                self.timeline.add(
                    f"loop pass ({p.trigger}): {p.outcome}, {result['seconds']:.1f} s — "
                    f"{result['reason'][:160]}",
                    outcome=p.outcome,
                    version=p.version,
                    seconds=result["seconds"],
                    governed_by=gate.get("governed_by"),
                    sets=gate.get("sets"),
                    steps=result.get("steps"),
                )
            known = len(found)
        store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready after {seconds:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    global QUIET
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, help="mlrig home (default: a new temporary folder)")
    ap.add_argument("--every", default="15s", help="schedule interval (default 15s)")
    ap.add_argument("--window", default="15s", help="monitoring.since of each pass")
    ap.add_argument("--since", default="20s", help="loop.since: production rows a retrain uses")
    ap.add_argument("--cooldown", default="30s", help="loop.cooldown")
    ap.add_argument("--rate", type=float, default=20.0, help="requests per second")
    ap.add_argument("--rows", type=int, default=10, help="rows per request")
    ap.add_argument(
        "--red-seconds", type=float, default=20.0, help="calm phase: at least this, and one pass"
    )
    ap.add_argument("--timeout", type=float, default=240.0, help="give up after S s of drift")
    ap.add_argument("--json", action="store_true", help="print the timeline as JSON")
    args = ap.parse_args(argv)
    QUIET = args.json
    from mlrig.config import parse_duration

    interval = parse_duration(args.every, "--every").total_seconds()
    home = (args.home or Path(tempfile.mkdtemp(prefix="mlrig-demo-"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "demo.toml"
    config.write_text(CONFIG.format(window=args.window, since=args.since, cooldown=args.cooldown))
    common = ["--home", str(home), "--config", str(config)]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    timeline = Timeline()
    timeline.add(f"home {home}")
    trained = subprocess.run(
        [MLRIG, "run", *common, "--quiet"], env=env, capture_output=True, text=True
    )
    if trained.returncode != 0:
        raise SystemExit(f"mlrig run failed: {trained.stderr}")
    timeline.add(f"trained on red wine: {trained.stdout.strip()}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [MLRIG, "serve", *common, "--port", str(port)], env=env, stderr=subprocess.DEVNULL
    )
    procs = [server]
    traffic = passes = None
    try:
        _wait(f"{url}/ready", server, 120)
        timeline.add(f"serving on {url}")
        schedule = subprocess.Popen(
            [MLRIG, "schedule", "--every", args.every, "--flow", "loop", *common],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(schedule)
        timeline.add(f"scheduled the loop every {args.every} on Prefect")
        from mlrig.config import load_settings

        settings = load_settings(config, {"home": home})
        passes = Passes(settings.predictions_url, settings.tracking.model_name, timeline)
        passes.start()
        deadline = time.monotonic() + args.timeout
        traffic = Traffic(url, timeline, args.rate, args.rows, seed=7)
        traffic.start()
        timeline.add("red-wine traffic with feedback (the training population)")
        calm_until = time.monotonic() + args.red_seconds
        while time.monotonic() < min(calm_until, deadline) or not passes.seen:
            if time.monotonic() > deadline:
                raise SystemExit("no scheduled pass ran during the calm phase")
            time.sleep(0.5)
        calm_passes = len(passes.seen)
        traffic.population = "white"
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and len(traffic.versions) < 2:
            time.sleep(0.5)
        time.sleep(2)  # a little traffic on the new version
    finally:
        if traffic is not None:
            traffic.stop.set()
            traffic.join(35)
        if passes is not None:
            passes.stop.set()
            passes.join(5)
        for proc in reversed(procs):
            _stop(proc)
        if "PREFECT_API_URL" not in os.environ:  # `mlrig schedule` started one for this home
            subprocess.run(
                [MLRIG, "schedule", "server", "stop", "--home", str(home)],
                env=env,
                capture_output=True,
            )
    swapped = len(traffic.versions) >= 2
    drift_at = traffic.first_drifted or 0.0
    new_version = max(traffic.versions, key=lambda v: traffic.versions[v]) if swapped else None
    promoted = [p for p in passes.seen if p["outcome"] == "promoted"]
    retrain_seconds = promoted[0]["seconds"] if promoted else None
    summary = {
        "home": str(home),
        "interval_s": interval,
        "requests": traffic.sent,
        "failed_requests": traffic.failed,
        "failed_feedback": traffic.feedback_failed,
        "errors": traffic.errors[:5],
        "calm_passes": passes.seen[:calm_passes],
        "passes": passes.seen,
        "new_version": new_version,
        "serving_new_version_after_s": round(traffic.versions[new_version] - drift_at, 2)
        if new_version
        else None,
        "promoting_pass_seconds": retrain_seconds,
        "target_s": round(2 * interval + retrain_seconds, 2) if retrain_seconds else None,
        "timeline": timeline.relative(),
    }
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        _print(summary)
    ok = swapped and traffic.failed == 0 and traffic.feedback_failed == 0
    return 0 if ok else 1


def _print(s: dict[str, Any]) -> None:
    print("\ntimeline (seconds after the first drifted request)")
    for e in s["timeline"]:
        print(f"  {e['after_drift']:+8.1f} s  {e['event']}")
        for step in e.get("steps") or () if e.get("outcome") in ("promoted", "kept") else ():
            print(f"              {step['step']:<26} {step['seconds']:6.2f} s")
        for scored in e.get("sets") or ():
            champion = scored["champion"]
            print(
                f"              gate on the {scored['name']} set ({scored['rows']} rows): "
                f"challenger rmse {scored['challenger']:.4f} vs champion "
                + ("—" if champion is None else f"{champion:.4f}")
                + (" ← decides" if scored["name"] == e.get("governed_by") else "")
            )
    print(
        f"\nrequests {s['requests']}, failed {s['failed_requests']}, failed feedback "
        f"{s['failed_feedback']}"
    )
    if s["new_version"]:
        print(
            f"version {s['new_version']} served {s['serving_new_version_after_s']:.1f} s after the "
            f"first drifted request (target: 2 × {s['interval_s']:.0f} s + the promoting pass "
            f"{s['promoting_pass_seconds']:.1f} s = {s['target_s']:.1f} s)"
        )
    else:
        print("no new version was served")
    for err in s["errors"]:
        print(f"error: {err}")


if __name__ == "__main__":
    sys.exit(main())
