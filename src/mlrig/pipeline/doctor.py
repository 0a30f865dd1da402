"""`mlrig doctor`'s pure part: which backend is configured where, what kind it is, and the fix
to print when it fails.

Every string a check shows goes through ``redact_text`` and then ``scrub`` (the secret values
found in the environment and in the configured URLs are replaced by ``***``), so a password
never reaches the terminal or the JSON, even inside a driver's error message. The probes (I/O)
live in ``pipeline/probes.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from mlrig.config import Settings
from mlrig.redact import MASK, redact_text, redact_url

Status = Literal["ok", "fail", "skip"]
Kind = Literal["sqlite", "database", "server", "other"]
ArtifactKind = Literal["proxied", "s3", "local", "other"]

UNREACHABLE_EXIT = 4  # like an unreachable tracking store (TrackingError)
# Environment variables whose values are secrets (never shown, even inside error messages).
SECRET_ENV = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
)
_DATABASES = ("postgresql", "mysql", "mariadb", "mssql", "oracle")


@dataclass(frozen=True)
class Target:
    """One configured backend: its URL and where the value came from (a config key or an
    environment variable, named in the fix)."""

    backend: str
    url: str
    source: str
    kind: Kind


@dataclass(frozen=True)
class Check:
    backend: str
    configured: str  # redacted, with its source
    status: Status
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else UNREACHABLE_EXIT

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def kind_of(url: str) -> Kind:
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme.split("+", 1)[0] in _DATABASES:
        return "database"
    if scheme in ("http", "https"):
        return "server"
    return "other"


def targets(settings: Settings, env: Mapping[str, str] = os.environ) -> list[Target]:
    """The stores of ``settings`` (MLflow's variables read from ``env``, as MLflow would) with
    the setting each came from, in the order shown."""
    t = settings.tracking
    default_tracking = f"sqlite:///{settings.home_dir / 'mlflow.db'}"
    tracking = _first(
        ("MLFLOW_TRACKING_URI", env.get("MLFLOW_TRACKING_URI")),
        ("tracking.uri", t.uri),
        ("default", default_tracking),
    )
    registry = _first(
        ("MLFLOW_REGISTRY_URI", env.get("MLFLOW_REGISTRY_URI")),
        ("tracking.registry_uri", t.registry_uri),
        ("= tracking", tracking[1]),
    )
    predictions = _first(
        ("MLRIG_PREDICTIONS_URL", env.get("MLRIG_PREDICTIONS_URL") and settings.predictions.url),
        ("predictions.url", settings.predictions.url),
        ("default", settings.predictions_url),
    )
    optuna = _first(("tune.storage", settings.tune.storage), ("default", settings.tune_storage))
    named = zip(
        ("tracking", "registry", "predictions", "optuna"),
        (tracking, registry, predictions, optuna),
        strict=True,
    )
    return [Target(backend, url, source, kind_of(url)) for backend, (source, url) in named]


def _first(*candidates: tuple[str, str | None]) -> tuple[str, str]:
    """The first (source, value) with a value; the last one always has one."""
    for source, value in candidates:
        if value:
            return source, value
    raise ValueError("no default")


def shown(target: Target) -> str:
    return f"{redact_url(target.url)} ({target.source})"


def artifact_kind(location: str) -> ArtifactKind:
    """``mlflow-artifacts:`` = proxied by the tracking server (clients hold no storage
    credentials); ``s3://`` = clients write to S3 directly (they need credentials); a path or
    ``file:`` = this machine's disk."""
    scheme = location.split(":", 1)[0].lower() if "://" in location or ":" in location else ""
    if scheme == "mlflow-artifacts":
        return "proxied"
    if scheme in ("s3", "s3a"):
        return "s3"
    if scheme in ("", "file") or len(scheme) == 1:  # a path (a Windows drive letter too)
        return "local"
    return "other"


_SETTING = {
    "tracking": "MLFLOW_TRACKING_URI or tracking.uri (MLRIG_TRACKING__URI)",
    "registry": "MLFLOW_REGISTRY_URI or tracking.registry_uri (default: the tracking store)",
    "predictions": "MLRIG_PREDICTIONS_URL or predictions.url",
    "optuna": "tune.storage (MLRIG_TUNE__STORAGE)",
}


def store_fix(target: Target, problem: str) -> str:
    """What to do when ``target`` cannot be reached, naming the setting to change."""
    where = _SETTING.get(target.backend, target.source)
    low = problem.lower()
    if "authentication" in low or "access denied" in low or "password" in low:
        return f"check the user and password in {where}"
    if "does not exist" in low or "unknown database" in low:
        return f"create the database, or fix its name in {where}"
    if target.kind == "server":
        return (
            "start the tracking server (`mlrig server --backend-store-uri … "
            f"--artifacts-destination …`) or fix {where}"
        )
    if target.kind == "sqlite":
        return f"make the folder writable, or point {where} elsewhere"
    return f"start the database server (or open its port to this host), or fix {where}"


def worker_fix(pool: str) -> str:
    return (
        f"start a worker where mlrig is installed, with PREFECT_API_URL set: "
        f"prefect worker start --pool {pool} --type process"
    )


PREFECT_FIX = (
    "start the server (`prefect server start`) or fix PREFECT_API_URL; unset it to let "
    "`mlrig schedule` start a local one under the mlrig home"
)
S3_CREDENTIALS_FIX = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and MLFLOW_S3_ENDPOINT_URL for a "
    "non-AWS store) for every client, or let the tracking server proxy artifacts "
    "(`mlrig server --artifacts-destination s3://…`, then a new experiment)"
)


def secrets_in(env: Mapping[str, str], urls: Iterable[str]) -> list[str]:
    """The secret values to scrub: the secret environment variables' values and the
    passwords of ``urls`` (as written and percent-decoded)."""
    found = [env[name] for name in SECRET_ENV if env.get(name)]
    for url in urls:
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password:
            found += [password, unquote(password)]
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with its URLs redacted and every secret value replaced by ``***``."""
    text = redact_text(text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def scrubbed(report: Report, secrets: list[str]) -> Report:
    def one(c: Check) -> Check:
        fix = scrub(c.fix, secrets) if c.fix else None
        return Check(
            c.backend, scrub(c.configured, secrets), c.status, scrub(c.detail, secrets), fix
        )

    return Report(tuple(one(c) for c in report.checks))


def render(report: Report) -> str:
    """The report as text: one line per backend, the detail, and the fix for a failure."""
    width = max((len(c.backend) for c in report.checks), default=8)
    lines = []
    for c in report.checks:
        mark = {"ok": "ok  ", "fail": "FAIL", "skip": "--  "}[c.status]
        lines.append(f"{mark}  {c.backend:<{width}}  {c.configured}")
        pad = " " * (8 + width)
        lines.append(f"{pad}{c.detail}")
        if c.fix:
            lines.append(f"{pad}fix: {c.fix}")
    verdict = "every configured backend is reachable" if report.ok else "some backends fail"
    lines.append(verdict)
    return "\n".join(lines)
