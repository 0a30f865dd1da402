"""The Prefect server that schedules need: the team's (``PREFECT_API_URL``) or a local one.

Prefect cannot schedule on its ephemeral server (0 runs in 85 s, shared/FACTS.md), so without
``PREFECT_API_URL`` mlrig starts ``prefect server start`` on 127.0.0.1, detached so that it
outlives the command, with its data under ``<home>/prefect`` (``PREFECT_HOME``), and records its
URL and pid in ``<home>/prefect/server.json``. A later command reuses the recorded server when it
answers ``/api/health``. A file lock keeps two commands from starting two servers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from mlrig.config import Settings
from mlrig.errors import ConfigError
from mlrig.redact import redact_url

DEFAULT_PORT = 4200  # Prefect's own default, when free
START_TIMEOUT_S = 180.0  # start-up takes 10–60 s on this machine (database migrations, UI)


@dataclass(frozen=True)
class PrefectServer:
    api_url: str  # ends in /api
    pid: int | None  # None: not ours (PREFECT_API_URL)
    home: str | None  # PREFECT_HOME of a local server
    started: bool = False  # started by this call

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/").removesuffix("/api")

    def describe(self) -> str:
        if self.pid is None:
            return f"Prefect server {redact_url(self.api_url)} (PREFECT_API_URL)"
        verb = "started" if self.started else "reusing"
        return (
            f"Prefect server: {verb} local {self.api_url} (pid {self.pid}, data in {self.home}); "
            "stop it with `mlrig schedule server stop`"
        )


def server_dir(settings: Settings) -> Path:
    return settings.home_dir / "prefect"


def ensure_server(settings: Settings) -> PrefectServer:
    """The server to talk to, started when needed; exports ``PREFECT_API_URL`` to this process
    (and so to its children). Raises ConfigError when a local server does not come up."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return PrefectServer(url, None, None)
    root = server_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / "server.lock"):
        server = _recorded(root)
        if server is None:
            server = _start(root)
    os.environ["PREFECT_API_URL"] = server.api_url
    return server


def local_server(settings: Settings) -> PrefectServer | None:
    """The recorded local server of this home when it answers, else None."""
    return _recorded(server_dir(settings))


def stop_server(settings: Settings, timeout: float = 30.0) -> PrefectServer | None:
    """Stop the local server of this home (SIGTERM to its process group, then SIGKILL);
    None when none is recorded."""
    root = server_dir(settings)
    state = root / "server.json"
    if not state.is_file():
        return None
    with _locked(root / "server.lock"):
        server = PrefectServer(**json.loads(state.read_text()))
        if server.pid is not None:
            _terminate(server.pid, timeout)
        state.unlink(missing_ok=True)
    return server


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _recorded(root: Path) -> PrefectServer | None:
    state = root / "server.json"
    if not state.is_file():
        return None
    try:
        server = PrefectServer(**json.loads(state.read_text()))
    except (ValueError, TypeError):
        return None
    return server if healthy(server.api_url) else None


def _start(root: Path) -> PrefectServer:
    port = _port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(root),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": api_url,
    }
    env.pop("PREFECT_API_URL", None)
    log_path = root / "server.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
            start_new_session=True,  # outlives this command and its terminal's Ctrl-C
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not healthy(api_url):
        if proc.poll() is not None or time.monotonic() > deadline:
            _terminate(proc.pid, 10)
            tail = log_path.read_text(errors="replace")[-1500:]
            raise ConfigError(
                f"local Prefect server on port {port} did not start (log {log_path}): {tail}"
            )
        time.sleep(0.5)
    server = PrefectServer(api_url, proc.pid, str(root), started=True)
    (root / "server.json").write_text(
        json.dumps({k: v for k, v in asdict(server).items() if k != "started"})
    )
    return server


def _port() -> int:
    for port in (DEFAULT_PORT, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise ConfigError("no free port on 127.0.0.1 for a local Prefect server")


def _terminate(pid: int, timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.2)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it when it is our own child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
