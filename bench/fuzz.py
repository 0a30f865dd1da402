"""Benchmark: fuzz the served API deeper than CI does, and print what came back.

    python bench/fuzz.py [--cases 5000]

Trains a champion in a temporary home, starts `mlrig serve` on 127.0.0.1 (batch limit 5 rows,
so the fuzzer reaches it), then runs schemathesis with every check against POST /predict and
POST /invocations (JSON) in positive and negative mode, ``--cases`` each; text/csv bodies and
raw bytes get a fifth and a half of that. The same driver as
tests/integration/test_openapi_fuzz.py. Prints one row per run — operation, mode, cases, 2xx,
4xx, 5xx, failures, seconds — then the prediction log's rows against the rows answered 2xx.
Exits 1 on any failure, 5xx or row mismatch.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5000, help="cases per operation and mode")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.conftest import Server
    from tests.integration.test_openapi_fuzz import MAX_ROWS, fuzz, logged_rows, raw_fuzz

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLRIG_")}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / ".mlrig"
        done = subprocess.run(
            [str(BIN / "mlrig"), "run", "--home", str(home), "--quiet"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 2
        server = Server(home, env={"MLRIG_SERVING__MAX_BATCH_ROWS": str(MAX_ROWS)})
        try:
            server.wait_ready()
            tallies = [
                fuzz(server.url, path, "application/json", mode, args.cases)
                for path in ("/predict", "/invocations")
                for mode in ("positive", "negative")
            ]
            tallies += [
                fuzz(server.url, "/invocations", "text/csv", mode, args.cases // 5, False)
                for mode in ("positive", "negative")
            ]
            tallies += [
                raw_fuzz(server.url, p, args.cases // 2) for p in ("/predict", "/invocations")
            ]
            stored = logged_rows(home)
        finally:
            server.stop()

    head = ["operation", "mode", "cases", "2xx", "4xx", "5xx", "failures", "s"]
    rows = [
        [t.operation, t.mode, str(t.cases), str(t.ok), str(t.client_errors),
         str(t.server_errors), str(len(t.failures)), f"{t.seconds:.0f}"]
        for t in tallies
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    answered = sum(t.rows for t in tallies)
    print(f"\nprediction log: {stored} rows; answered 2xx: {answered} rows")
    for t in tallies:
        for failure in t.failures[:3]:
            print(f"FAIL {t.operation} {t.mode}: {failure}")
    bad = any(t.failures or t.server_errors for t in tallies) or stored != answered
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
