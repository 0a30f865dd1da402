"""Datasets fetched over HTTP from a real local server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import mlrig
from mlrig.data import ingest
from mlrig.data.ingest import embedded_path, load_table
from mlrig.errors import DataSourceError


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow.csv":
            time.sleep(3)
        if self.path in ("/winequality-red.csv", "/slow.csv"):
            body = embedded_path().read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # the timeout test's client gives up on purpose: its broken pipe is expected
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)
            return
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_csv_url_is_fetched_and_parsed(server: str) -> None:
    table = load_table(f"{server}/winequality-red.csv")
    assert table.frame.shape == (1599, 12)
    assert table.digest == load_table(embedded_path()).digest


def test_http_error_is_named(server: str) -> None:
    with pytest.raises(DataSourceError, match=r"data URL .*/nope.csv: HTTP 404"):
        load_table(f"{server}/nope.csv")


def test_timeout_is_reported(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "URL_TIMEOUT_S", 0.5)
    with pytest.raises(DataSourceError, match=r"slow.csv: timed out"):
        load_table(f"{server}/slow.csv")


def test_unreachable_host_is_named() -> None:
    from tests.conftest import free_port

    with pytest.raises(DataSourceError, match="cannot be fetched"):
        load_table(f"http://127.0.0.1:{free_port()}/x.csv")


def test_python_api_runs_on_a_url_and_records_it(server: str, home: Path) -> None:
    url = f"{server}/winequality-red.csv"
    result = mlrig.run(url, home=home, experiment="from-url")
    assert result.data_source == url
    assert result.rows == 1599 and result.promoted
    from mlflow import MlflowClient

    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    run = MlflowClient(uri, uri).get_run(result.run_id)
    assert run.data.tags["mlrig.data_source"] == url
    assert any(url in d.dataset.source for d in run.inputs.dataset_inputs)
