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
