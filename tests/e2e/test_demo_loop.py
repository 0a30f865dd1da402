"""`make demo-loop` as a user runs it: train on red wine → serve → red traffic with feedback
(the scheduled loop does not retrain) → white traffic with feedback → the scheduled loop finds
drift and degradation, retrains, the challenger wins on the recent production slice, is
promoted, and the running server answers with it — zero failed requests throughout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
def test_demo_loop_closes_the_loop_on_a_schedule(home: Path, prefect_api: str) -> None:
    import os

    env = {**os.environ, "PREFECT_API_URL": prefect_api}  # the session's Prefect server
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo_loop.py"), "--home", str(home), "--json",
         "--every", "10s", "--window", "10s", "--red-seconds", "12", "--timeout", "150"],
        env=env, capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    assert done.stdout, done.stderr[-3000:]
    s = json.loads(done.stdout)
    assert done.returncode == 0, (s["errors"], done.stderr[-3000:])
    assert s["failed_requests"] == 0 and s["failed_feedback"] == 0 and s["requests"] > 200

    calm = s["calm_passes"]  # red-wine traffic: passes ran, none retrained
    assert calm and all(p["outcome"] == "no_retrain" and not p["retrain"] for p in calm)
    assert any(p["verdict"] == "ok" for p in calm)

    promoting = next(p for p in s["passes"] if p["outcome"] == "promoted")
    assert promoting["trigger"] == "schedule"
    assert "drift" in promoting["triggers"]
    gate = promoting["gate"]
    recent = next(x for x in gate["sets"] if x["name"] == "recent")
    assert gate["governed_by"] == "recent" and recent["rows"] >= 100
    assert recent["challenger"] < recent["champion"]  # rmse: decided by the data
    assert promoting["production"]["recent_rows"] == recent["rows"]

    # the server answers with the promoted version, within two intervals plus the retrain
    assert s["new_version"] == promoting["version"]
    assert s["serving_new_version_after_s"] <= s["target_s"], s["timeline"]
