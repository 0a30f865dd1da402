"""The server's monitoring endpoints and its overview page, in a real headless Chromium
(Debian's chromium + chromedriver, driven by Selenium): the page loads offline, shows the same
numbers as the JSON endpoints, and logs no console error."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import WINE_ROW, Server, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def server(trained_home: Path) -> Iterator[Server]:
    s = Server(trained_home)
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


def _traffic(url: str, n: int = 150) -> list[str]:
    ids = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(n):
            row = {**WINE_ROW, "alcohol": 9.0 + (i % 40) / 10, "pH": 3.2 + (i % 7) / 20}
            ids.append(client.post("/predict", json=row).json()["predictions"][0]["id"])
        feedback = [{"id": pid, "actual": 5 + i % 2} for i, pid in enumerate(ids[:60])]
        assert client.post("/feedback", json=feedback).status_code == 200
    return ids


def test_monitoring_endpoint_serves_the_latest_stored_verdict(server: Server) -> None:
    empty = httpx.get(f"{server.url}/monitoring").json()
    assert empty["verdict"] is None and "mlrig monitor" in empty["message"]
    _traffic(server.url)
    done = run_cli("monitor", "--home", str(server.home), "--json", "--no-track")
    assert done.returncode in (0, 1), done.stderr
    latest = httpx.get(f"{server.url}/monitoring").json()
    assert latest["verdict"] in ("ok", "drift", "degraded", "drift_and_degraded")
    assert latest["window"]["rows"] == 150 and latest["versions"][0]["quality"]["labelled"] == 60
    report = httpx.get(f"{server.url}{latest['report_url']}")
    assert report.status_code == 200 and "version 1" in report.text
    assert httpx.get(f"{server.url}/monitoring/report/999").status_code == 404


def _chrome():  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    assert browser and driver, "apt-get install chromium chromium-driver (done by .ci/run)"
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,1400",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_overview_page_shows_the_same_numbers_as_the_json_endpoints(
    server: Server, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _traffic(server.url)
    done = run_cli("monitor", "--home", str(server.home), "--no-track")
    assert done.returncode in (0, 1), done.stderr
    driver = _chrome()
    try:
        driver.get(server.url + "/")
        WebDriverWait(driver, 30).until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "true"
        )
        shown = {
            el.get_attribute("data-field"): el.text
            for el in driver.find_elements(By.CSS_SELECTOR, "[data-field]")
        }
        rows = {
            tr.get_attribute("data-column"): [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in driver.find_elements(By.CSS_SELECTOR, "#drift tbody tr")
        }
        history = driver.find_elements(By.CSS_SELECTOR, "#history tbody tr")
        driver.save_screenshot(str(tmp_path / "overview.png"))
        console = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    finally:
        driver.quit()
    overview = httpx.get(f"{server.url}/overview.json").json()
    monitoring = httpx.get(f"{server.url}/monitoring").json()
    assert console == []
    assert shown["model"] == overview["model"] == "wine-quality"
    assert shown["version"] == overview["version"] == "1"
    assert int(shown["requests.total"]) == overview["requests"]["total"] == 150
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        assert float(shown[f"requests.{key}"]) == pytest.approx(overview["requests"][key], abs=1e-4)
    assert int(shown["predictions.logged"]) == overview["predictions"]["logged"] == 150
    assert int(shown["predictions.with_feedback"]) == overview["predictions"]["with_feedback"] == 60
    assert float(shown["predictions.feedback_share"]) == pytest.approx(0.4)
    assert shown["monitoring.verdict"] == monitoring["verdict"]
    latest = monitoring["versions"][-1]
    expected = {c["column"]: c for c in latest["drift"]["columns"]}
    expected["prediction"] = latest["prediction_drift"]
    assert set(rows) == set(expected)
    for column, (name, test, score, threshold, drifted) in rows.items():
        c = expected[column]
        assert name == column and test == c["test"]
        assert float(score) == pytest.approx(c["score"], rel=1e-3, abs=1e-4)
        assert float(threshold) == pytest.approx(c["threshold"])
        assert drifted == ("yes" if c["drifted"] else "no")
    assert len(history) == len(overview["champion_history"]) == 1
