"""A password in every URL, end to end: a PostgreSQL tracking store whose URL holds a password,
and a data URL with user:password and a presigned-style token, served by a real HTTP server
that refuses the request without them. `mlrig run` (through a real Prefect server), `mlrig
tune`, `mlrig ui` and `mlrig schedule` must work with the real URLs and show none of the
secrets: not on stdout/stderr, in the --json summary, anywhere in the MLflow database or its
artifacts, in the ui children's command lines (`ps`), in Prefect's flow runs, task runs, logs
or deployments."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mlrig.data.ingest import embedded_path
from tests.conftest import BIN, MLRIG, free_port, run_cli

pytestmark = pytest.mark.slow

DB_PASSWORD = "Pg-S3cr3t-pw7"
DATA_USER, DATA_PASSWORD = "reader", "D4ta-S3cr3t-pw9"
SIGNATURE, CREDENTIAL = "SigS3cr3tabc123", "AKIAS3cr3tCRED"
SECRETS = (
    DB_PASSWORD,
    DATA_PASSWORD,
    SIGNATURE,
    CREDENTIAL,
    base64.b64encode(f"{DATA_USER}:{DATA_PASSWORD}".encode()).decode(),  # the Authorization header
)


def leaks(text: str | bytes) -> list[str]:
    raw = text.encode() if isinstance(text, str) else text
    return [s for s in SECRETS if s.encode() in raw]


class _Data(BaseHTTPRequestHandler):
    """The wine CSV, only for the right basic-auth password and the signed query."""

    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        expected = "Basic " + base64.b64encode(f"{DATA_USER}:{DATA_PASSWORD}".encode()).decode()
        authorised = (
            self.headers.get("Authorization") == expected
            and query.get("X-Amz-Signature") == [SIGNATURE]
            and query.get("X-Amz-Credential") == [CREDENTIAL]
        )
        _Data.hits.append("ok" if authorised else "refused")
        body = embedded_path().read_bytes() if authorised else b"forbidden"
        self.send_response(200 if authorised else 403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class World:
    root: Path  # cwd of every command: MLflow's default artifact root lands under it
    home: Path
    tracking_uri: str
    data_url: str
    env: dict[str, str]
    prefect_api: str
    outputs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(
    postgres_url: str, prefect_api: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A PostgreSQL role with a password and its own database; the data server; one `mlrig
    run` through Prefect and one `mlrig tune --json`, both on the secret URLs."""
    import sqlalchemy

    suffix = uuid.uuid4().hex[:8]
    role, db = f"secret_{suffix}", f"secrets_{suffix}"
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN PASSWORD '{DB_PASSWORD}'"))
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {db} OWNER {role}"))
    admin.dispose()
    host = postgres_url.split("@", 1)[1].rsplit("/", 1)[0]
    tracking_uri = f"postgresql+psycopg://{role}:{DB_PASSWORD}@{host}/{db}"

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Data)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    data_url = (
        f"http://{DATA_USER}:{DATA_PASSWORD}@127.0.0.1:{httpd.server_address[1]}/wine.csv"
        f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={CREDENTIAL}"
        f"&X-Amz-Expires=600&X-Amz-Signature={SIGNATURE}"
    )
    root = tmp_path_factory.mktemp("secrets")
    w = World(
        root,
        root / "home",
        tracking_uri,
        data_url,
        {"MLFLOW_TRACKING_URI": tracking_uri},
        prefect_api,
    )
    try:
        w.outputs["run"] = run_cli(
            "run",
            "--home",
            str(w.home),
            "--data",
            data_url,
            "--json",
            env={**w.env, "PREFECT_API_URL": prefect_api},
            cwd=root,
            timeout=300,
        )
        w.outputs["tune"] = run_cli(
            "tune",
            "--home",
            str(w.home),
            "--trials",
            "2",
            env={**w.env, "MLRIG_DATA__SOURCE": data_url},
            cwd=root,
            timeout=300,
        )
        yield w
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_run_and_tune_work_on_the_real_urls_and_print_no_secret(world: World) -> None:
    run, tune = world.outputs["run"], world.outputs["tune"]
    assert run.returncode == 0, run.stderr
    assert tune.returncode == 0, tune.stderr
    assert _Data.hits and set(_Data.hits) == {"ok"}  # fetched with the real credentials
    for done in (run, tune):
        assert leaks(done.stdout + done.stderr) == []
    # the redacted forms are what the user sees
    masked_store = world.tracking_uri.replace(DB_PASSWORD, "***")
    shown = tune.stderr.replace("\n", "")  # rich folds long lines on a pipe
    assert "tune (local mode)" in shown and masked_store in shown
    assert "X-Amz-Signature=***" in tune.stdout and f"{DATA_USER}:***@" in tune.stdout
    summary = json.loads(run.stdout)
    assert summary["mode"] == "prefect"
    assert summary["tracking_uri"] == masked_store
    assert "X-Amz-Signature=***" in summary["data_source"]
    assert "X-Amz-Credential=***" in summary["data_source"]


def test_no_secret_anywhere_in_the_mlflow_database(world: World) -> None:
    """Every text cell of every table of the tracking database: params, tags, dataset
    sources and names, logged models, registered versions, inputs."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(world.tracking_uri)
    try:
        meta = sqlalchemy.MetaData()
        meta.reflect(engine)
        rows: dict[str, int] = {}
        found: list[tuple[str, str]] = []
        sources: list[str] = []
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(table.select()):
                    rows[table.name] = rows.get(table.name, 0) + 1
                    found += [(table.name, s) for value in row for s in leaks(str(value))]
                if table.name == "datasets":
                    sources += [str(r.dataset_source) for r in conn.execute(table.select())]
    finally:
        engine.dispose()
    assert found == []
    # the runs really are in there: run, tune's parent and its 2 trials; their records
    assert rows["runs"] >= 4 and rows["params"] > 10 and rows["tags"] > 10, rows
    assert rows["model_versions"] >= 2 and rows["inputs"] >= 4, rows
    assert sources and all("X-Amz-Signature=***" in s for s in sources)


def test_no_secret_in_any_file_written(world: World) -> None:
    """Artifacts (MLflow's default root under the working directory), the mlrig home (the
    Optuna study, the prediction store) and anything else the commands wrote."""
    files = [p for p in world.root.rglob("*") if p.is_file()]
    assert len(files) > 10
    assert any(p.name == "MLmodel" for p in files)
    assert [(str(p), s) for p in files for s in leaks(p.read_bytes())] == []


def test_no_secret_in_prefect_flow_runs_task_runs_or_logs(world: World) -> None:
    api = world.prefect_api
    home = str(world.home.resolve())
    runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 200}, timeout=30).json()
    ours = [r for r in runs if r["parameters"].get("home") == home]
    assert len(ours) == 1 and ours[0]["state_type"] == "COMPLETED"
    overrides = ours[0]["parameters"]["overrides"]
    assert overrides["data"]["source"].startswith(f"http://{DATA_USER}:***@127.0.0.1:")
    tasks = httpx.post(
        f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [ours[0]["id"]]}}}, timeout=30
    ).json()
    logs = httpx.post(
        f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [ours[0]["id"]]}}}, timeout=30
    ).json()
    assert len(tasks) >= 5
    assert leaks(json.dumps([ours, tasks, logs])) == []


def test_a_deployment_refers_to_the_config_and_holds_no_secret(
    world: World, tmp_path: Path
) -> None:
    config = tmp_path / "mlrig.toml"
    config.write_text(
        f'[data]\nsource = "{world.data_url}"\n\n[tracking]\nuri = "{world.tracking_uri}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLRIG_")}
    env["PREFECT_API_URL"] = world.prefect_api
    pool = f"secrets-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(
        [str(BIN / "prefect"), "work-pool", "create", pool, "--type", "process"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    args = ("schedule", "--every", "1d", "--flow", "train", "--name", "secret-nightly")
    done = run_cli(
        *args,
        "--config",
        str(config),
        "--home",
        str(tmp_path / "h"),
        "--pool",
        pool,
        env={"PREFECT_API_URL": world.prefect_api},
    )
    assert done.returncode == 0, done.stderr
    assert leaks(done.stdout + done.stderr) == []
    deployment = httpx.get(
        f"{world.prefect_api}/deployments/name/mlrig-train/secret-nightly", timeout=30
    ).json()
    assert deployment["parameters"]["config"] == str(config.resolve())  # a reference
    assert leaks(json.dumps(deployment)) == []


def _session_cmdlines(sid: int) -> dict[int, str]:
    """Command lines (as `ps` shows them) of every process in session ``sid``."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != sid:
                continue
            out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ProcessLookupError):
            continue
    return out


def test_ui_gets_the_store_by_environment_and_ps_shows_no_secret(world: World) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLRIG_", "MLFLOW_"))}
    env.update(world.env)
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # 2 processes, not 4 (shared/FACTS.md)
    log = world.root / "ui.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [MLRIG, "ui", "--home", str(world.home), "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=world.root,
        )
    try:
        deadline = time.monotonic() + 240
        answer = None
        while time.monotonic() < deadline and answer is None:
            assert proc.poll() is None, log.read_text()
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search",
                    json={"max_results": 10},
                    timeout=5,
                )
                answer = r if r.status_code == 200 else None
            except httpx.HTTPError:
                time.sleep(0.5)
        assert answer is not None, f"MLflow UI did not answer: {log.read_text()[-2000:]}"
        # the UI reads the PostgreSQL store the runs wrote (passed through the environment)
        assert "mlrig" in [e["name"] for e in answer.json()["experiments"]]
        cmdlines = _session_cmdlines(proc.pid)
        assert len(cmdlines) >= 2, cmdlines  # the mlflow CLI and its uvicorn server
        assert any("mlflow" in c for c in cmdlines.values())
        assert [c for c in cmdlines.values() if leaks(c) or "postgresql" in c] == []
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert leaks(log.read_text()) == []
    assert "store postgresql+psycopg://" in log.read_text()
