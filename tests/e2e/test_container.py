"""The serving image, really built and run: a Debian bookworm minbase made with debootstrap
(no registry is reachable), deploy/Dockerfile built on it with podman, the container serving the
session's champion on a published port (recipe: shared/FACTS.md, 2026-11-24)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import WINE_ROW, predictor_of, stored_ids
from tests.services import free_port

# A first build on a fresh machine downloads and installs ≈200 wheels: minutes, not seconds.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "bookworm"
BASE = f"localhost/debian:{RELEASE}"
IMAGE = "localhost/mlrig-serve:e2e"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Without runc and these limits podman fails here (setrlimit RLIMIT_NOFILE, crun and hybrid
# cgroups): shared/FACTS.md.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
"""


def _run(
    argv: list[str], env: dict[str, str], timeout: float, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv[:3])} … exited {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def _mirror() -> str:
    """The host's Debian mirror (deb822 sources), else Debian's redirector."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


def _debian_rootfs_tar(env: dict[str, str]) -> tuple[Path, float]:
    """A minbase rootfs as a tar, cached in /var/tmp by release and day: the first run on a
    machine pays for debootstrap (≈45 s), later ones reuse it. Returns (tar, seconds spent)."""
    tar = Path(f"/var/tmp/mlrig-debian-{RELEASE}-minbase-{dt.date.today()}.tar")
    if tar.exists():
        return tar, 0.0
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mlrig-debootstrap-", dir="/var/tmp") as work:
        rootfs = Path(work) / "rootfs"
        _run(["debootstrap", "--variant=minbase", RELEASE, str(rootfs), _mirror()], env, 900)
        part = tar.with_suffix(".part")
        _run(["tar", "-C", str(rootfs), "-cf", str(part), "."], env, 300)
        part.rename(tar)
    return tar, time.monotonic() - start


def _image_id(name: str, env: dict[str, str]) -> str | None:
    done = _run(["podman", "image", "inspect", "--format", "{{.Id}}", name], env, 60, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


@pytest.fixture(scope="module")
def podman_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


@pytest.fixture(scope="module")
def timings() -> Iterator[dict[str, float]]:
    spent: dict[str, float] = {}
    yield spent
    print("\ncontainer test wall times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in spent.items()))


@pytest.fixture(scope="module")
def serving_image(podman_env: dict[str, str], timings: dict[str, float]) -> str:
    """deploy/Dockerfile built on the local Debian base; the previous build of the tag is
    removed once replaced (its layers would otherwise pile up on every source change)."""
    tar, timings["debootstrap"] = _debian_rootfs_tar(podman_env)
    label = f"mlrig.rootfs={tar.name}"
    have = _run(
        ["podman", "image", "inspect", "--format", '{{index .Labels "mlrig.rootfs"}}', BASE],
        podman_env,
        60,
        check=False,
    )
    start = time.monotonic()
    if have.returncode != 0 or have.stdout.strip() != tar.name:
        _run(["podman", "import", "--change", f"LABEL {label}", str(tar), BASE], podman_env, 300)
    timings["import"] = time.monotonic() - start
    previous = _image_id(IMAGE, podman_env)
    build = [
        "podman",
        "build",
        "--format",
        "docker",
        "--network",
        "host",
        "--build-arg",
        f"BASE={BASE}",
        "-f",
        "deploy/Dockerfile",
        "-t",
        IMAGE,
    ]
    if os.environ.get("PIP_INDEX_URL"):
        build += ["--build-arg", f"PIP_INDEX_URL={os.environ['PIP_INDEX_URL']}"]
    ca = Path(os.environ.get("PIP_CERT") or CA_BUNDLE)
    if ca.is_file():  # a private CA in front of the index (a secret: never in a layer)
        build += ["--secret", f"id=ca,src={ca}"]
    start = time.monotonic()
    log = Path(podman_env["CONTAINERS_CONF"]).with_name("build.log")
    with log.open("w") as out:
        done = subprocess.run(
            [*build, "."],
            cwd=ROOT,
            env=podman_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1800,
            check=False,
        )
    assert done.returncode == 0, f"podman build failed:\n{log.read_text()[-4000:]}"
    timings["build"] = time.monotonic() - start
    built = _image_id(IMAGE, podman_env)
    if previous and previous != built:
        _run(["podman", "rmi", previous], podman_env, 120, check=False)
    return IMAGE


def _wait_ready(url: str, name: str, env: dict[str, str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _run(["podman", "inspect", "--format", "{{.State.Status}}", name], env, 30)
        if state.stdout.strip() != "running":
            logs = _run(["podman", "logs", name], env, 30, check=False)
            raise AssertionError(f"container {state.stdout.strip()}: {logs.stderr[-3000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    logs = _run(["podman", "logs", name], env, 30, check=False)
    raise AssertionError(f"{url}/ready not 200 in {timeout} s: {logs.stderr[-3000:]}")


def test_image_serves_the_champion_as_non_root_and_turns_healthy(
    serving_image: str,
    podman_env: dict[str, str],
    trained_template: Path,
    tmp_path: Path,
    timings: dict[str, float],
) -> None:
    # The home's registry holds absolute paths to its artifacts: a copy is mounted where the
    # template lives, writable by the image's user (:U), so the container's SQLite prediction
    # store lands in it and the template stays untouched.
    home = tmp_path / "home"
    shutil.copytree(trained_template, home)
    port = free_port()
    name = f"mlrig-e2e-{port}"
    run = [
        "podman",
        "run",
        "-d",
        "--name",
        name,
        "-p",
        f"127.0.0.1:{port}:8000",
        "-v",
        f"{home}:{trained_template}:U",
        "-e",
        f"MLRIG_HOME={trained_template}",
        "-e",
        "MLRIG_SERVING__MODEL=wine-quality@champion",
        serving_image,
    ]
    url = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    try:
        _run(run, podman_env, 120)
        _wait_ready(url, name, podman_env, 180)
        timings["start"] = time.monotonic() - start

        r = httpx.post(f"{url}/predict", json={**WINE_ROW, "id": "from-the-container"}, timeout=30)
        assert r.status_code == 200, r.text
        answer = r.json()["predictions"][0]
        predictor = predictor_of(trained_template)
        row = np.array([[WINE_ROW[f] for f in predictor.features]], dtype=np.float64)
        expected, _ = predictor.predict(row)
        assert answer["model"] == "wine-quality" and answer["version"] == "1"
        assert answer["prediction"] == pytest.approx(float(expected[0]), rel=1e-9)

        uid = _run(["podman", "exec", name, "id", "-u"], podman_env, 60).stdout.strip()
        assert uid.isdigit() and int(uid) != 0, f"container runs as uid {uid}"

        start = time.monotonic()
        check = _run(["podman", "healthcheck", "run", name], podman_env, 60, check=False)
        timings["healthcheck"] = time.monotonic() - start
        assert check.returncode == 0, check.stdout + check.stderr
        status = _run(
            ["podman", "inspect", "--format", "{{.State.Health.Status}}", name], podman_env, 30
        )
        assert status.stdout.strip() == "healthy"
    finally:
        _run(["podman", "rm", "-f", "-v", "-t", "5", name], podman_env, 120, check=False)
    # acknowledged = committed: the row is in the store the container wrote, on the volume
    assert "from-the-container" in stored_ids(home)
