from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.services import free_port

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlrig.predictions.store import PredictionStore
    from tests.services import MariaDb, S3Store

BIN = Path(sys.executable).parent
MLRIG = str(BIN / "mlrig")
_SCRUB = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PREFECT_API_URL")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own directory, with no mlrig/MLflow/Prefect settings inherited."""
    for name in list(os.environ):
        if name.startswith("MLRIG_") or name in _SCRUB:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / ".mlrig"


@pytest.fixture
def wine_csv(tmp_path: Path) -> Path:
    from mlrig.data.ingest import embedded_path

    dest = tmp_path / "wine.csv"
    shutil.copy(embedded_path(), dest)
    return dest




def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``mlrig ARGS`` in a fresh process, like a user would run it."""
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith("MLRIG_") and k not in _SCRUB
    }
    full_env.update(env or {})
    return subprocess.run(
        [MLRIG, *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def wait_http(
    url: str, proc: subprocess.Popen[bytes], timeout: float, output: Callable[[], str]
) -> None:
    """Until GET ``url`` answers 200; fails with the process's output if it dies or times out."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}: {output()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready in {timeout} s: {output()}")


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Prefect server for the session (ephemeral servers cost ≈10–20 s per process)."""
    port = free_port()
    prefect_home = tmp_path_factory.mktemp("prefect-home")
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = (prefect_home / "server.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_http(
            f"{url}/health", proc, 120, lambda: (prefect_home / "server.log").read_text()[-2000:]
        )
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


class Server:
    """A real `mlrig serve` process on 127.0.0.1."""

    def __init__(
        self, home: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith("MLRIG_") and k not in _SCRUB
        }
        full_env.update(env or {})
        self.log = (home.parent / f"serve-{self.port}.log").open("w")
        self.proc = subprocess.Popen(
            [MLRIG, "serve", "--home", str(home), "--port", str(self.port), *args],
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        wait_http(f"{self.url}/ready", self.proc, timeout, self.output)

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]

    def stop(self, sig: int = 15) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig or signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with one champion (version 1), trained once per session; copy it before writing."""
    home = tmp_path_factory.mktemp("template") / ".mlrig"
    done = run_cli("run", "--home", str(home), "--quiet")
    assert done.returncode == 0, done.stderr
    return home


@pytest.fixture
def trained_home(trained_template: Path, tmp_path: Path) -> Path:
    home = tmp_path / "served" / ".mlrig"
    shutil.copytree(trained_template, home)
    return home


WINE_ROW = {
    "fixed acidity": 7.4,
    "volatile acidity": 0.7,
    "citric acid": 0.0,
    "residual sugar": 1.9,
    "chlorides": 0.076,
    "free sulfur dioxide": 11.0,
    "total sulfur dioxide": 34.0,
    "density": 0.9978,
    "pH": 3.51,
    "sulphates": 0.56,
    "alcohol": 9.4,
}


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's throwaway PostgreSQL cluster on 127.0.0.1 (tests/services.py)."""
    from tests.services import PgCluster

    cluster = PgCluster(tmp_path_factory.mktemp("pg"))
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDb]:
    """The session's MariaDB server (the French demo's MySQL); ``mariadb.database(name)``."""
    from tests.services import MariaDb

    server = MariaDb(tmp_path_factory.mktemp("mariadb"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    """The session's S3-compatible store (``rclone serve s3``)."""
    from tests.services import S3Store

    store = S3Store(tmp_path_factory.mktemp("s3"))
    store.start()
    try:
        yield store
    finally:
        store.stop()


def wine_frame(colour: str = "red"):  # type: ignore[no-untyped-def]
    """The embedded red or white wine data (same schema, two populations) as a DataFrame."""
    import pandas as pd

    from mlrig.data.ingest import embedded_path

    return pd.read_csv(embedded_path().with_name(f"winequality-{colour}.csv"), sep=";")


def stored_predictions(home: Path):  # type: ignore[no-untyped-def]
    """The prediction log a server on ``home`` wrote, one row per prediction (a DataFrame)."""
    from mlrig.predictions.store import PredictionStore

    store = PredictionStore(f"sqlite:///{home / 'predictions.db'}")
    try:
        return store.read_frame()
    finally:
        store.close()


def stored_ids(home: Path) -> set[str]:
    frame = stored_predictions(home)
    return set(frame["id"]) if len(frame) else set()


def write_taxi_parquet(path: Path, n: int = 600, seed: int = 0) -> Path:
    """A small NYC green-taxi-shaped Parquet file (zoomcamp schema) whose trip duration
    depends on the zones as well as the distance, so the categoricals matter."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    zones = np.array([7, 41, 74, 75, 82, 95, 132, 166])
    slow = {7: 0.0, 41: 4.0, 74: 2.0, 75: 6.0, 82: -1.0, 95: 0.0, 132: 9.0, 166: 3.0}
    pu, do = rng.choice(zones, n), rng.choice(zones, n)
    distance = rng.gamma(2.0, 1.5, n)
    minutes = (
        3
        + 2.5 * distance
        + np.vectorize(slow.get)(pu)
        + np.vectorize(slow.get)(do)
        + rng.normal(0, 1.0, n)
    )
    pickup = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 86_400 * 28, n), "s")
    pd.DataFrame(
        {
            "lpep_pickup_datetime": pickup,
            "lpep_dropoff_datetime": pickup + pd.to_timedelta(minutes, "min"),
            "PULocationID": pu.astype("int64"),
            "DOLocationID": do.astype("int64"),
            "trip_distance": distance,
            "duration": minutes,
        }
    ).to_parquet(path, index=False)
    return path


def predictor_of(home: Path, ref: str = "wine-quality@champion"):  # type: ignore[no-untyped-def]
    """The real serving predictor of ``ref`` in ``home``'s registry."""
    from mlrig.config import load_settings
    from mlrig.serving.predictor import Predictor
    from mlrig.tracking.loading import load_model
    from mlrig.tracking.store import open_client

    client = open_client(load_settings(None, {"home": home}))
    return Predictor(load_model(client, ref), 100_000)


def log_traffic(
    store: PredictionStore,
    predictor,  # type: ignore[no-untyped-def]
    rows: pd.DataFrame,
    actual: np.ndarray | None = None,
    batch: int = 50,
) -> None:
    """Predict ``rows`` with the real predictor and log them as the server does (``batch`` rows
    per request); ``actual`` becomes feedback for every row."""
    import datetime as dt

    import numpy as np

    from mlrig.predictions.records import PredictionBatch, generated_ids, new_batch_id
    x = rows[list(predictor.features)].to_numpy(dtype=np.float64)
    ids: list[str] = []
    records = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        preds, proba = predictor.predict(chunk)
        b = new_batch_id()
        records.append(
            PredictionBatch(
                b, generated_ids(b, len(chunk)), False, dt.datetime.now(dt.UTC), predictor.name,
                predictor.version, "predict", predictor.features, chunk, preds, 1.0, proba,
                predictor.classes,
            )
        )
        ids += records[-1].ids
    store.insert_batches(records)
    if actual is not None:
        store.add_feedback(predictor.name, list(zip(ids, (float(a) for a in actual), strict=True)))


def prediction_store(home: Path) -> PredictionStore:
    from mlrig.predictions.store import PredictionStore

    store = PredictionStore(f"sqlite:///{home / 'predictions.db'}")
    store.create_schema()
    return store


class TrackingServer:
    """A real `mlrig server` (MLflow's tracking server) on 127.0.0.1 with one worker; ``env``
    is the server's own (storage credentials, backend URL), never the clients'."""

    def __init__(
        self,
        home: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        port: int | None = None,
    ) -> None:
        self.home, self.env, self.args = home, env or {}, args
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home.parent / f"mlflow-server-{self.port}.log"
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith("MLRIG_") and k not in _SCRUB
        }
        full_env.update(self.env)
        with self.log_path.open("a") as log:
            return subprocess.Popen(
                [MLRIG, "server", "--home", str(self.home), "--port", str(self.port),
                 "--workers", "1", *self.args],
                env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 120) -> None:
        wait_http(f"{self.uri}/health", self.proc, timeout, self.output)

    def output(self) -> str:
        return self.log_path.read_text()

    def stop(self, sig: int = 15) -> int:
        """Signal ``mlrig server`` (it forwards to MLflow) and wait; its exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError):  # nothing of the group may outlive it
            os.killpg(self.proc.pid, 9)
        return self.proc.returncode

    def restart(self) -> None:
        self.stop()
        self.proc = self._start()
        self.wait_ready()


# KServe's Python client (kserve 0.21) pins pandas<3, protobuf<7 and psutil<6, which would
# downgrade this stack; its REST client needs none of them. So the package and the few modules
# its import chain reaches are installed with --no-deps into a directory of their own (once per
# machine) and appended to sys.path: nothing of the shared environment is shadowed or changed.
KSERVE_CLIENT = (
    "kserve==0.21.0",
    "grpcio==1.85.3",
    "cloudevents==1.13.0",
    "kubernetes==37.0.2",
    "durationpy==0.11",
    "timing-asgi==0.3.2",
    "tabulate==0.10.0",
    "grpc-interceptor==0.15.4",
)


@pytest.fixture(scope="session")
def kserve_client() -> object:
    """The ``kserve`` module (InferenceRESTClient, InferRequest, InferInput)."""
    target = Path(
        os.environ.get("MLRIG_TEST_KSERVE_DIR", Path.home() / ".cache/mlrig-tests/kserve-0.21.0")
    )
    if not (target / "kserve").is_dir():
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target"]
        done = subprocess.run(
            [*pip, str(staging), *KSERVE_CLIENT], capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr
        staging.rename(target)
    if str(target) not in sys.path:
        sys.path.append(str(target))
    import kserve

    return kserve


def write_taxi_config(path: Path, data: Path) -> Path:
    """The zoomcamp's model as an mlrig config: a ridge on two categorical zones and the trip
    distance, registered as ``taxi-duration``."""
    path.write_text(
        f'[data]\nsource = "{data}"\ntarget = "duration"\n'
        'features = ["PULocationID", "DOLocationID", "trip_distance"]\n'
        'categorical = ["PULocationID", "DOLocationID"]\n'
        'drop = ["lpep_pickup_datetime", "lpep_dropoff_datetime"]\n'
        '[train]\nmodel = "ridge"\nparams = { alpha = 1.0 }\nplots = false\n'
        '[tracking]\nmodel_name = "taxi-duration"\n'
    )
    return path
