"""`mlrig ui` serves the MLflow UI on the embedded store, bound to 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MLRIG, free_port

pytestmark = pytest.mark.slow


def test_ui_serves_the_tracking_store(home: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [MLRIG, "ui", "--home", str(home), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, "mlrig ui exited"
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search",
                    json={"max_results": 10},
                    timeout=2,
                )
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("MLflow UI did not answer in 240 s")
        assert "Default" in r.text
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
