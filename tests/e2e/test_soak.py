"""The 60-second soak (bench/soak.py, as CI runs it): a fixed request rate against a real
`mlrig serve`; no acknowledged prediction lost or duplicated, memory flat."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


@pytest.mark.slow
def test_soak_one_minute_loses_nothing_and_memory_stays_flat(trained_template: Path) -> None:
    done = subprocess.run(
        [str(BIN / "python"), str(SOAK), "--seconds", "60", "--rate", "100", "--every", "10",
         "--home", str(trained_template), "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    s = json.loads(done.stdout.strip().splitlines()[-1])
    assert s["sent"] >= 5_000  # the sender kept the rate (an open loop: 100/s × 60 s)
    assert s["failed"] == 0, s  # no 5xx, no unexpected 4xx, no dropped connection
    assert s["acknowledged"] + s["shed_503"] == s["sent"]
    assert s["lost"] == 0 and s["duplicates"] == 0, s
    # a request answered 503 after its deadline may still be logged (at-least-once), never twice
    assert s["acknowledged"] <= s["stored"] <= s["sent"]
    # memory flat after the first interval: a leak of even 1 KB per request would be ~6 MB
    assert s["rss_last_mb"] - s["rss_first_mb"] < 25, s
