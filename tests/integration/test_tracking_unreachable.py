"""A tracking store that refuses connections fails `mlrig run` within seconds (it used to
retry silently for 1 min 44 s), naming the store with its password masked, after visible
retries; a store that comes back during the retries is used."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlrig.errors import TrackingError
from mlrig.tracking.store import probe_store
from tests.conftest import free_port, run_cli

PASSWORD = "Tr4ck-Pa55w0rd"
# The old behaviour took 104 s; the probe takes ≈1.5 s of back-off plus start-up. The bound
# leaves room for a loaded 2-core machine and still fails the old behaviour by far.
LIMIT_S = 40


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (
            "postgresql+psycopg://mlrig:{pw}@127.0.0.1:{port}/mlflow",
            "postgresql+psycopg://mlrig:***@127.0.0.1:{port}/mlflow",
        ),
        ("http://mlrig:{pw}@127.0.0.1:{port}", "http://mlrig:***@127.0.0.1:{port}"),
    ],
    ids=["postgresql", "http"],
)
@pytest.mark.parametrize("command", ["run", "ui"])
def test_a_closed_port_fails_fast_naming_the_masked_store(
    home: Path, uri: str, shown: str, command: str
) -> None:
    port = free_port()  # nothing listens there
    env = {"MLFLOW_TRACKING_URI": uri.format(pw=PASSWORD, port=port)}
    args = ["--port", str(free_port())] if command == "ui" else ["--quiet"]
    started = time.monotonic()
    done = run_cli(command, "--home", str(home), *args, env=env, timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 4, done.stderr
    assert elapsed < LIMIT_S, f"{elapsed:.1f} s"
    store = shown.format(port=port)
    assert f"error: tracking store {store}: cannot connect after 3 attempts" in done.stderr
    assert done.stderr.count(f"tracking store {store}: ") == 3  # two retries announced, one error
    assert "retrying in 0.5 s (attempt 2 of 3)" in done.stderr
    assert "retrying in 1 s (attempt 3 of 3)" in done.stderr
    assert "check that" in done.stderr
    assert PASSWORD not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_retry_count_and_timeout_come_from_the_environment(home: Path) -> None:
    env = {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "MLRIG_TRACKING__CONNECT_RETRIES": "0",
    }
    done = run_cli("run", "--home", str(home), "--quiet", env=env, timeout=120)
    assert done.returncode == 4, done.stderr
    assert "retrying" not in done.stderr
    assert "cannot connect after 1 attempt (" in done.stderr


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def late_server() -> Iterator[tuple[int, threading.Event]]:
    """A real HTTP server on a fixed port that starts listening only when asked: a store
    that is down at first and comes back (set the event)."""
    port = free_port()
    wanted = threading.Event()
    servers: list[ThreadingHTTPServer] = []

    def start() -> None:
        wanted.wait(60)
        httpd = ThreadingHTTPServer(("127.0.0.1", port), _Health)
        servers.append(httpd)
        httpd.serve_forever()

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    yield port, wanted
    wanted.set()
    for _ in range(50):
        if servers:
            break
        time.sleep(0.1)
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_a_store_that_comes_back_during_the_retries_is_used(
    late_server: tuple[int, threading.Event], caplog: pytest.LogCaptureFixture
) -> None:
    port, come_back = late_server
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the store comes back during the first back-off
        slept.append(seconds)
        come_back.set()
        time.sleep(1.0)

    with caplog.at_level(logging.WARNING, "mlrig.tracking.store"):
        probe_store(f"http://u:{PASSWORD}@127.0.0.1:{port}", 5, 3, sleep=sleep)
    assert slept == [0.5]
    assert len(caplog.records) == 1
    assert "retrying in 0.5 s (attempt 2 of 4)" in caplog.text
    assert f"http://u:***@127.0.0.1:{port}" in caplog.text
    assert PASSWORD not in caplog.text


def test_a_live_postgresql_store_passes_and_a_dead_database_name_is_final(
    postgres_url: str,
) -> None:
    probe_store(postgres_url, 5, 0)
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    slept: list[float] = []
    with pytest.raises(TrackingError) as info:
        probe_store(missing, 5, 3, sleep=slept.append)
    assert slept == []  # the server answered "no": retrying cannot help
    assert "no_such_database" in str(info.value)
    assert "cannot connect (" in str(info.value)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A real listening socket that never answers: the kernel completes the TCP handshake,
    nobody reads or writes — a store that hangs instead of refusing."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield int(sock.getsockname()[1])
    sock.close()


@pytest.mark.parametrize(
    "uri",
    ["http://u:{pw}@127.0.0.1:{port}", "postgresql+psycopg://u:{pw}@127.0.0.1:{port}/db"],
    ids=["http", "postgresql"],
)
def test_a_store_that_hangs_is_given_up_after_the_timeout(silent_port: int, uri: str) -> None:
    slept: list[float] = []
    started = time.monotonic()
    with pytest.raises(TrackingError) as info:
        probe_store(uri.format(pw=PASSWORD, port=silent_port), 2, 1, sleep=slept.append)
    elapsed = time.monotonic() - started
    assert slept == [0.5]  # one retry, then the error
    # two attempts of 2 s each (libpq's minimum); without the timeout this would hang for good
    assert 3.5 < elapsed < LIMIT_S, f"{elapsed:.1f} s"
    message = str(info.value)
    assert "cannot connect after 2 attempts" in message and "timeout" in message.lower()
    assert PASSWORD not in message and "u:***@127.0.0.1" in message
