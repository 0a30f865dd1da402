"""Hot swaps that must not happen, and a registry that goes away, while the server answers.

Real components throughout: the MLflow SQLite store `mlrig run` wrote, real versions registered
in it (their files copied from version 1 and then broken on purpose), the real app in-process.
Polls are driven one at a time (``poll_once``), so nothing here depends on timing.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from mlrig.config import Settings, load_settings
from mlrig.predictions.store import PredictionStore
from mlrig.predictions.writer import GroupCommitWriter
from mlrig.serving.app import create_app
from mlrig.serving.follower import ModelFollower
from mlrig.serving.startup import Registry, open_follower
from tests.conftest import WINE_ROW

NAME = "wine-quality"


def _settings(home: Path, **serving: Any) -> Settings:
    return load_settings(overrides={"home": home, "serving": {"poll_interval": 0, **serving}})


@pytest.fixture
def client(trained_home: Path) -> MlflowClient:
    uri = f"sqlite:///{trained_home / 'mlflow.db'}"
    return MlflowClient(uri, uri)


class Served:
    """The real app over a follower, in-process."""

    def __init__(self, settings: Settings, follower: ModelFollower) -> None:
        self.follower = follower
        self.store = PredictionStore(settings.predictions_url)
        self.store.create_schema()
        self.http = TestClient(
            create_app(settings, follower, self.store, GroupCommitWriter(self.store))
        )

    def predict_version(self) -> str:
        r = self.http.post("/predict", json=WINE_ROW)
        assert r.status_code == 200, r.text
        return str(r.json()["predictions"][0]["version"])

    def checks(self) -> dict[str, Any]:
        r = self.http.get("/ready")
        assert r.status_code == 200, r.text  # the model answers, whatever else is wrong
        return dict(r.json()["checks"])

    def metric(self, name: str) -> float:
        m = re.search(rf"^{name} (\S+)$", self.http.get("/metrics").text, re.M)
        assert m, name
        return float(m.group(1))

    def poll(self, base: float = 1.0) -> float:
        return asyncio.run(self.follower.poll_once(base))


@pytest.fixture
def served(trained_home: Path) -> Iterator[Served]:
    settings = _settings(trained_home, poll_max_interval=8)
    s = Served(settings, open_follower(settings))
    with s.http:
        yield s


# --- versions broken on purpose ------------------------------------------------------------------


def _v1_files(client: MlflowClient) -> Path:
    return Path(client.get_model_version_download_uri(NAME, "1").removeprefix("file://"))


def _register(client: MlflowClient, files: Path) -> str:
    run_id = client.get_model_version(NAME, "1").run_id
    return str(client.create_model_version(NAME, str(files), run_id=run_id).version)


def _copy(client: MlflowClient, dest: Path) -> Path:
    shutil.copytree(_v1_files(client), dest)
    return dest


def _edit_mlmodel(files: Path, edit: Any) -> None:
    meta = yaml.safe_load((files / "MLmodel").read_text())
    edit(meta)
    (files / "MLmodel").write_text(yaml.safe_dump(meta))


def _rename_feature(meta: dict[str, Any]) -> None:
    inputs = json.loads(meta["signature"]["inputs"])
    inputs[-1]["name"] = "alcohol_pct"
    meta["signature"]["inputs"] = json.dumps(inputs)


def _estimator(files: Path) -> Any:
    import skops.io

    return skops.io.load(files / "model.skops")


def _as_pickle(files: Path) -> Path:
    (files / "model.pkl").write_bytes(pickle.dumps(_estimator(files)))
    (files / "model.skops").unlink()

    def edit(meta: dict[str, Any]) -> None:
        meta["flavors"]["sklearn"].update(serialization_format="pickle", pickled_model="model.pkl")
        meta["flavors"]["python_function"]["model_path"] = "model.pkl"

    _edit_mlmodel(files, edit)
    return files


def _self_trusting(files: Path) -> Path:
    """A skops file holding a type skops does not trust, whose own MLmodel says to trust it."""
    import operator

    import skops.io
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    model = make_pipeline(FunctionTransformer(operator.pos), _estimator(files))
    skops.io.dump(model, files / "model.skops")
    _edit_mlmodel(
        files, lambda m: m["flavors"]["sklearn"].update(skops_trusted_types=["_operator.pos"])
    )
    return files


def _refit_on_fewer_features(files: Path) -> None:
    """Same signature (11 features), but an estimator fitted on 10: every request would fail."""
    import skops.io
    from sklearn.linear_model import LinearRegression

    from tests.conftest import wine_frame

    frame = wine_frame().head(50)
    x = frame[list(WINE_ROW)[:-1]]
    skops.io.dump(LinearRegression().fit(x.to_numpy(), frame["quality"]), files / "model.skops")


def _broken_versions(client: MlflowClient, tmp: Path) -> dict[str, tuple[str, str]]:
    """label -> (version, words the refusal must contain)."""
    missing = _copy(client, tmp / "missing")
    (missing / "model.skops").unlink()
    corrupt = _copy(client, tmp / "corrupt")
    (corrupt / "model.skops").write_bytes(b"not a skops zip file")
    unsigned = _copy(client, tmp / "unsigned")
    _edit_mlmodel(unsigned, lambda m: m.pop("signature"))
    other = _copy(client, tmp / "other")
    _edit_mlmodel(other, _rename_feature)
    misfit = _copy(client, tmp / "misfit")
    _refit_on_fewer_features(misfit)
    return {
        "estimator does not fit its signature": (_register(client, misfit), "input example"),
        "file deleted": (_register(client, missing), "cannot be loaded"),
        "file corrupted": (_register(client, corrupt), "cannot be loaded"),
        "no signature": (_register(client, unsigned), "without an input signature"),
        "other features": (_register(client, other), "alcohol_pct"),
        "pickle": (
            _register(client, _as_pickle(_copy(client, tmp / "pkl"))),
            "serving.allow_pickle",
        ),
        "self-trusting skops": (
            _register(client, _self_trusting(_copy(client, tmp / "trusting"))),
            "serving.trusted_types",
        ),
    }


def test_broken_versions_keep_the_served_model_say_why_and_load_once(
    served: Served, client: MlflowClient, tmp_path: Path, trained_home: Path
) -> None:
    broken = _broken_versions(client, tmp_path)
    loads = served.follower.load_attempts
    for label, (version, words) in broken.items():
        client.set_registered_model_alias(NAME, "champion", version)
        for _ in range(3):  # three polls while the alias names the broken version
            served.poll()
            assert served.predict_version() == "1", label
        assert served.follower.load_attempts == loads + 1, f"{label}: loaded more than once"
        loads += 1
        model = served.checks()["model"]
        assert model["status"] == "stale" and model["version"] == "1", (label, model)
        assert words in model["rejected"][version], (label, model["rejected"])
        assert f"version {version} not served" in model["detail"]
        assert served.checks()["registry"]["status"] == "ok"
    assert served.metric("mlrig_model_load_failures_total") == len(broken)
    assert served.metric("mlrig_model_rejected_versions") == 1

    good = _register(client, _copy(client, tmp_path / "good"))
    client.set_registered_model_alias(NAME, "champion", good)
    served.poll()
    assert served.predict_version() == good
    assert served.checks()["model"] == {**served.checks()["model"], "status": "ok", "version": good}
    assert "rejected" not in served.checks()["model"]

    # The alias moving onto a broken version again is a new decision: tried once more.
    again = broken["file corrupted"][0]
    client.set_registered_model_alias(NAME, "champion", again)
    served.poll()
    served.poll()
    assert served.follower.load_attempts == loads + 2
    assert served.predict_version() == good
    assert served.metric("mlrig_model_loads_total") == loads + 2
    # Only versions that served become the local copy to start from.
    pointer = json.loads((trained_home / "serving-cache" / NAME / "last.json").read_text())
    assert pointer["version"] == good and pointer["ref"] == f"{NAME}@champion"


def test_admin_reload_retries_a_rejected_version_and_reports_why(
    trained_home: Path, client: MlflowClient, tmp_path: Path
) -> None:
    settings = _settings(trained_home, admin_token="adm1n")
    s = Served(settings, open_follower(settings))
    unsigned = _copy(client, tmp_path / "unsigned")
    _edit_mlmodel(unsigned, lambda m: m.pop("signature"))
    version = _register(client, unsigned)
    client.set_registered_model_alias(NAME, "champion", version)
    with s.http:
        s.poll()
        r = s.http.post("/admin/reload", headers={"Authorization": "Bearer adm1n"})
        assert r.status_code == 409 and "signature" in r.json()["error"], r.text
        assert s.follower.load_attempts == 3  # start-up, the poll, the explicit reload
        assert s.predict_version() == "1"


# --- the registry goes away --------------------------------------------------------------------


def test_registry_down_keeps_answering_backs_off_and_recovers(
    served: Served, trained_home: Path
) -> None:
    db = trained_home / "mlflow.db"
    saved = db.read_bytes()
    with db.open("r+b") as fh:  # the store's file becomes unreadable under the running client
        fh.write(b"garbage!" * 4096)
    delays = [served.poll(1.0) for _ in range(5)]
    assert delays == [2.0, 4.0, 8.0, 8.0, 8.0]  # doubles, capped by poll_max_interval
    assert served.predict_version() == "1"
    registry = served.checks()["registry"]
    assert registry["status"] == "unreachable"
    assert registry["detail"].startswith(f"unreachable since {registry['since']}, last error:")
    assert "not a database" in registry["last_error"]
    assert served.metric("mlrig_registry_poll_failures_total") == 5
    assert served.metric("mlrig_registry_up") == 0
    last_ok = served.metric("mlrig_registry_last_success_timestamp_seconds")
    assert last_ok > 0
    assert served.follower.load_attempts == 1  # nothing was (re)loaded while it was down

    with db.open("r+b") as fh:
        fh.write(saved)
    assert served.poll(1.0) == 1.0  # back to the base interval after one success
    assert served.checks()["registry"]["status"] == "ok"
    assert served.metric("mlrig_registry_up") == 1
    assert served.metric("mlrig_registry_last_success_timestamp_seconds") >= last_ok
    assert served.metric("mlrig_registry_poll_failures_total") == 5


class BlockingRegistry(Registry):
    """The real registry (MLflow on the home's SQLite store), whose alias lookups block while
    ``gate`` is closed: a store that hangs instead of failing."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.gate = threading.Event()
        self.gate.set()
        self.calls = 0

    def resolve(self, ref: str) -> str:
        self.calls += 1
        self.gate.wait()
        return super().resolve(ref)


def test_a_hung_registry_times_out_without_piling_up_calls(trained_home: Path) -> None:
    settings = _settings(trained_home, registry_timeout=0.5)
    registry = BlockingRegistry(settings)
    s = Served(settings, open_follower(settings, registry))
    with s.http:
        registry.gate.clear()
        assert s.poll(1.0) == 2.0
        assert "no answer from the registry in 0.5 s" in s.checks()["registry"]["last_error"]
        assert s.poll(1.0) == 4.0
        assert "running since" in s.checks()["registry"]["last_error"]
        assert registry.calls == 2  # start-up + the one hung call; the second poll did not call
        assert s.predict_version() == "1"
        registry.gate.set()
        for _ in range(100):  # the hung call returns once the gate opens
            if not s.follower.busy:
                break
            threading.Event().wait(0.05)
        assert s.poll(1.0) == 1.0
        assert s.checks()["registry"]["status"] == "ok"


# --- starting without the registry -----------------------------------------------------------


def test_start_from_the_local_copy_when_the_registry_is_unreachable(
    trained_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = open_follower(_settings(trained_home))  # a normal start keeps a copy
    expected = Served(_settings(trained_home), first)
    with expected.http:
        reference = expected.http.post("/predict", json=WINE_ROW).json()

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    settings = _settings(trained_home)
    follower = open_follower(settings)
    assert follower.source == "cache" and follower.current and follower.current.version == "1"
    s = Served(settings, follower)
    with s.http:
        r = s.http.post("/predict", json=WINE_ROW)
        assert r.status_code == 200
        assert r.json()["predictions"][0]["prediction"] == reference["predictions"][0]["prediction"]
        model = s.checks()["model"]
        assert model["source"] == "cache" and "local copy of version 1" in model["detail"]
        # the tracking store's own probe names it and says what to check
        assert f"tracking store {settings.registry_uri}: cannot connect" in model["detail"]
        assert s.checks()["registry"]["status"] == "unreachable"

    # With no copy there is nothing to serve: a clear error, not a server without a model.
    shutil.rmtree(trained_home / "serving-cache")
    from mlrig.errors import TrackingError

    with pytest.raises(TrackingError, match="cannot connect"):
        open_follower(settings)


def _closed_port() -> int:
    from tests.conftest import free_port

    return free_port()  # bound, then released: nothing listens there


def test_start_with_a_broken_champion_serves_the_last_good_copy(
    trained_home: Path, client: MlflowClient, tmp_path: Path
) -> None:
    settings = _settings(trained_home)
    open_follower(settings)  # version 1 served once: the local copy
    corrupt = _copy(client, tmp_path / "corrupt")
    (corrupt / "model.skops").write_bytes(b"\x00" * 64)
    version = _register(client, corrupt)
    client.set_registered_model_alias(NAME, "champion", version)

    s = Served(settings, open_follower(settings))
    with s.http:
        assert s.predict_version() == "1"
        model = s.checks()["model"]
        assert model["source"] == "cache" and "cannot be loaded" in model["rejected"][version]
        s.poll()
        s.poll()
        assert s.follower.load_attempts == 1  # the start-up attempt only


def test_a_deleted_alias_keeps_the_model_and_is_reported_as_not_found(
    served: Served, client: MlflowClient
) -> None:
    client.delete_registered_model_alias(NAME, "champion")
    assert served.poll(1.0) == 2.0
    assert served.predict_version() == "1"
    registry = served.checks()["registry"]
    assert registry["status"] == "not found", registry
    assert registry["detail"].startswith(f"{NAME}@champion not found since")
    client.set_registered_model_alias(NAME, "champion", "1")
    assert served.poll(1.0) == 1.0
    assert served.checks()["registry"]["status"] == "ok"
    assert served.follower.load_attempts == 1


def test_a_damaged_local_copy_is_not_served_and_the_real_error_is_raised(
    trained_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    open_follower(_settings(trained_home))
    (trained_home / "serving-cache" / NAME / "1" / "model.skops").write_bytes(b"half a file")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    from mlrig.errors import TrackingError

    with pytest.raises(TrackingError, match="cannot connect"):
        open_follower(_settings(trained_home))
    assert "local copy not usable" in caplog.text and "cannot be loaded" in caplog.text


def test_a_cache_that_cannot_be_written_does_not_stop_serving_or_swapping(
    trained_home: Path, client: MlflowClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (trained_home / "serving-cache").write_text("a file where the cache folder should be")
    settings = _settings(trained_home)
    s = Served(settings, open_follower(settings))
    with s.http:
        assert s.predict_version() == "1"
        good = _register(client, _copy(client, tmp_path / "good"))
        client.set_registered_model_alias(NAME, "champion", good)
        s.poll()
        assert s.predict_version() == good
    assert caplog.text.count("no local copy kept") == 2
