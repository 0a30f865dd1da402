"""deploy/: the Dockerfile, compose file and manifests pass the real validators, and what those
cannot see (service names, mlrig's own flags, passwords) is checked here. The image itself is
built and run in tests/e2e/test_container.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
IMAGE = "localhost/mlrig-serve"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))


def _tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120, check=False
    )


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _k8s_docs() -> Iterator[dict[str, Any]]:
    for path in MANIFESTS:
        yield from (doc for doc in yaml.safe_load_all(path.read_text()) if doc)


def _mlrig_command_lines() -> list[tuple[str, list[str]]]:
    """Every argv given to the image's ``mlrig`` entry point: the Dockerfile's CMD, compose
    services that keep the entry point, Kubernetes containers' args."""
    found: list[tuple[str, list[str]]] = []
    cmd = re.search(r"^CMD (\[.*\])$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert cmd, "deploy/Dockerfile has no exec-form CMD"
    found.append(("Dockerfile CMD", json.loads(cmd.group(1))))
    for name, svc in _compose()["services"].items():
        if svc.get("image", "").startswith(IMAGE) and "entrypoint" not in svc:
            found.append((f"compose {name}", [str(a) for a in svc["command"]]))
    for doc in _k8s_docs():
        if doc["kind"] != "Deployment":
            continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            if c["image"].startswith(IMAGE):
                assert "command" not in c, f"{c['name']}: keep the image's mlrig entry point"
                found.append((f"k8s {doc['metadata']['name']}/{c['name']}", c["args"]))
    return found


def test_dockerfile_is_hadolint_clean() -> None:
    done = _tool("hadolint", str(DEPLOY / "Dockerfile"))
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_manifests_pass_kubernetes_validate_strict() -> None:
    assert {p.name for p in MANIFESTS} >= {"serve.yaml", "serve-config.yaml"}
    done = _tool("kubernetes-validate", "--strict", *map(str, MANIFESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed for resource deployment/mlrig-serve" in done.stdout + done.stderr


def test_compose_file_matches_the_compose_spec() -> None:
    done = _tool(
        "check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml")
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_depends_on_names_a_service_with_a_healthcheck_when_awaited() -> None:
    services = _compose()["services"]
    assert {"postgres", "minio", "mlflow", "prefect-server", "prefect-worker", "serve"} <= set(
        services
    )
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        for dep in deps:
            assert dep in services, f"{name} depends on unknown service {dep!r}"
            if isinstance(deps, dict) and deps[dep].get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits on {dep}'s missing check"


def test_every_mlrig_command_line_parses_with_mlrig_cli() -> None:
    """A renamed or removed flag, or a bad value, fails here rather than in a deployment."""
    import typer
    from typer.main import get_command

    from mlrig.cli.main import app

    group = get_command(app)  # typer's own (vendored) click group
    lines = _mlrig_command_lines()
    assert {argv[0] for _, argv in lines} >= {"serve", "server"}
    for where, argv in lines:
        sub = group.get_command(typer.Context(group), argv[0])  # type: ignore[attr-defined]
        assert sub is not None, f"{where}: mlrig has no command {argv[0]!r}"
        try:
            sub.make_context(argv[0], list(argv[1:]))
        except typer.TyperException as exc:  # click's UsageError, BadParameter, NoSuchOption
            pytest.fail(f"{where}: `mlrig {' '.join(argv)}`: {exc}")


def test_prefect_worker_command_parses_with_prefect_cli() -> None:
    """Prefect's own (cyclopts) parser: an unknown option or a missing value fails here."""
    from cyclopts.exceptions import CycloptsError
    from prefect.cli.worker import worker_app

    worker = _compose()["services"]["prefect-worker"]
    assert worker["entrypoint"] == ["prefect"] and worker["command"][0] == "worker"
    try:
        command, bound, _ = worker_app.parse_args(
            worker["command"][1:], exit_on_error=False, print_error=False
        )
    except CycloptsError as exc:
        pytest.fail(f"compose prefect-worker: `prefect {' '.join(worker['command'])}`: {exc}")
    assert command.__name__ == "start"
    assert bound.arguments == {"work_pool_name": "mlrig", "worker_type": "process"}


def test_services_select_their_pods_and_probes_hit_real_ports() -> None:
    docs = list(_k8s_docs())
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for svc in (d for d in docs if d["kind"] == "Service"):
        pods = [
            d["spec"]["template"]
            for d in deployments.values()
            if svc["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert pods, f"Service {svc['metadata']['name']} selects no Deployment's pods"
        ports = {p["name"] for c in pods[0]["spec"]["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{svc['metadata']['name']}: {port['targetPort']}"
    serve = deployments["mlrig-serve"]["spec"]["template"]["spec"]["containers"][0]
    assert serve["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert serve["livenessProbe"]["httpGet"]["path"] == "/health"
    assert serve["ports"][0]["containerPort"] == int(
        serve["args"][serve["args"].index("--port") + 1]
    )


def test_tracking_clients_use_a_host_the_server_allows() -> None:
    """MLflow >= 3.5 answers 403 to a Host header it was not told about (shared/FACTS.md)."""
    services = _compose()["services"]
    args = services["mlflow"]["command"]
    allowed = set(args[args.index("--allowed-hosts") + 1].split(","))
    config = next(d for d in _k8s_docs() if d["kind"] == "ConfigMap")
    uris = [config["data"]["MLFLOW_TRACKING_URI"]] + [
        svc["environment"]["MLFLOW_TRACKING_URI"]
        for svc in services.values()
        if "MLFLOW_TRACKING_URI" in (svc.get("environment") or {})
    ]
    k8s_args = next(
        d for d in _k8s_docs() if d["metadata"]["name"] == "mlflow" and d["kind"] == "Deployment"
    )["spec"]["template"]["spec"]["containers"][0]["args"]
    allowed_k8s = set(k8s_args[k8s_args.index("--allowed-hosts") + 1].split(","))
    for uri in uris:
        host_port = uri.split("://", 1)[1].split("/", 1)[0]
        assert host_port in allowed and host_port in allowed_k8s, f"{uri}: Host not allowed"


def test_passwords_come_only_from_required_variables() -> None:
    """No default or literal password in the compose file, no Secret with data in git."""
    text = (DEPLOY / "compose.yaml").read_text()
    secrets = re.findall(r"\$\{(\w*(?:PASSWORD|SECRET|ROOT_USER)\w*)([^}]*)\}", text)
    assert secrets, "the compose file should take its passwords from variables"
    for name, rest in secrets:
        assert rest.startswith(":?"), f"${{{name}{rest}}}: a password must be required (:?)"
    for name, svc in _compose()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET", key):
                assert str(value).startswith("${"), f"{name}: {key} is a literal"
            # interpolations become one placeholder, then a URL's password must be one
            url = re.sub(r"\$\{[^}]*\}", "\0", str(value))
            for password in re.findall(r"://[^/@]*:([^/@]*)@", url):
                assert password == "\0", f"{name}: {key} has a literal password"
    assert not [d for d in _k8s_docs() if d["kind"] == "Secret"], "Secrets are created, not kept"
