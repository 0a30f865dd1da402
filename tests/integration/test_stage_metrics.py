"""The hot path's per-stage counters on /metrics move with real requests: every accepted
prediction request is counted once in every stage, with time spent; a refused one is counted in
none (its parse failed: it is never predicted, logged or answered from the model)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from mlrig.predictions.stages import STAGES
from tests.conftest import WINE_ROW, Server


def _stages(url: str) -> dict[str, tuple[float, float]]:
    text = httpx.get(f"{url}/metrics").text
    found: dict[str, list[float]] = {}
    pattern = r'^mlrig_request_stage_seconds_(count|sum)\{stage="(\w+)"\} (\S+)'
    for kind, stage, value in re.findall(pattern, text, re.M):
        found.setdefault(stage, [0.0, 0.0])[kind == "sum"] = float(value)
    return {k: (v[0], v[1]) for k, v in found.items()}


def test_stage_counters_follow_real_requests(trained_home: Path) -> None:
    srv = Server(trained_home)
    try:
        srv.wait_ready()
        before = _stages(srv.url)
        assert set(before) == set(STAGES)
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            for i in range(3):
                r = client.post("/predict", json={**WINE_ROW, "id": f"stage-{i}"})
                assert r.status_code == 200, r.text
            body = {
                "dataframe_split": {
                    "columns": list(WINE_ROW),
                    "data": [list(WINE_ROW.values())] * 50,
                }
            }
            assert client.post("/invocations", json=body).status_code == 200
            bad = client.post("/predict", json={**WINE_ROW, "alcohol": "strong"})
            assert bad.status_code == 422
        after = _stages(srv.url)
        for stage in STAGES:
            count = after[stage][0] - before[stage][0]
            seconds = after[stage][1] - before[stage][1]
            assert count == 4, (stage, count)  # 3 + 1 accepted; the 422 counts nowhere
            assert seconds > 0, stage
    finally:
        srv.stop()
