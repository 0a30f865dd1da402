"""A served classifier answers and logs class probabilities next to its labels (/predict and
/invocations), so live ROC-AUC and KS can be computed from feedback."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import WINE_ROW, Server, run_cli, stored_predictions

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("config", "classes"),
    [
        ('[data]\npositive_threshold = 7\n[tracking]\nmodel_name = "wine"\n', ["0", "1"]),
        ('[data]\ntask = "classification"\n[tracking]\nmodel_name = "wine"\n', None),
    ],
    ids=["binary", "multiclass"],
)
def test_classifier_answers_and_logs_probabilities(
    tmp_path: Path, config: str, classes: list[str] | None
) -> None:
    home = tmp_path / ".mlrig"
    (tmp_path / "mlrig.toml").write_text(config)
    done = run_cli("run", "--home", str(home), "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    server = Server(home, args=("--config", str(tmp_path / "mlrig.toml")))
    try:
        server.wait_ready()
        rows = [WINE_ROW, {**WINE_ROW, "alcohol": 13.5, "sulphates": 0.85}]
        predicted = httpx.post(f"{server.url}/predict", json=rows).json()["predictions"]
        split = {"dataframe_split": {"columns": list(WINE_ROW), "data": [list(r.values()) for r in rows]}}
        invoked = httpx.post(f"{server.url}/invocations", json=split).json()
    finally:
        server.stop()
    labels = invoked["predictions"]
    assert [p["prediction"] for p in predicted] == labels
    proba = np.array(invoked["probabilities"])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    if classes is not None:  # binary: the positive class's probability per record
        assert invoked["classes"] == classes
        assert [p["probability"] for p in predicted] == pytest.approx(proba[:, 1].tolist())
        assert labels == [int(p > 0.5) for p in proba[:, 1]]
    else:  # multiclass: {class: probability} per record, labels the argmax
        names = invoked["classes"]
        assert set(predicted[0]["probabilities"]) == set(names) and len(names) > 2
        assert labels == [int(names[i]) for i in proba.argmax(axis=1)]
    log = stored_predictions(home)
    stored = log[[c for c in log.columns if c.startswith("proba_")]].to_numpy()
    assert stored.shape == (4, len(invoked["classes"]))
    np.testing.assert_allclose(stored[2:], proba)
