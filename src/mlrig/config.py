"""One settings object for mlrig, built once (CLI or ASGI entry) and passed down.

Precedence, highest first: explicit overrides (CLI flags, Python API keywords), environment
(``MLRIG_*``, nested with ``__``), the TOML config file (``mlrig.toml`` or ``--config``), defaults.
MLflow's own variables (``MLFLOW_TRACKING_URI``, ``MLFLOW_REGISTRY_URI``) keep their meaning and win
over mlrig's settings for the tracking store.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mlrig.errors import ConfigError

CONFIG_FILE_NAME = "mlrig.toml"

# Short, documented environment names for the settings people set most often.
_FLAT_ENV = {
    "MLRIG_PREDICTIONS_URL": ("predictions", "url"),
    # the Optuna storage on the team's database, kept off command lines (ps shows them)
    "MLRIG_OPTUNA_STORAGE": ("tune", "storage"),
    "MLRIG_ADMIN_TOKEN": ("serving", "admin_token"),
    "MLRIG_PREDICT_TOKEN": ("serving", "predict_token"),
}


_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSettings(_Section):
    source: str | None = Field(None, description="Path or http(s) URL; None = embedded red wine.")
    separator: str | None = Field(None, description="CSV separator; None = auto-detect.")
    target: str = Field("quality", description="Target column.")
    features: list[str] | None = Field(
        None, description="Expected feature columns; None = every column but the target."
    )
    categorical: list[str] | None = Field(
        None,
        description="Categorical feature columns (one-hot encoded in the model); "
        "None = every non-numeric feature column.",
    )
    drop: list[str] = Field([], description="Columns ignored before validation.")
    task: Literal["auto", "regression", "classification"] = Field(
        "auto", description="auto = classification for a binary or non-numeric target."
    )
    positive_threshold: float | None = Field(
        None, description="Classification label = (target >= threshold), e.g. 7 for 'good' wine."
    )
    test_size: float = Field(0.25, gt=0, lt=1, description="Held-out fraction.")
    split_seed: int = Field(42, description="Seed of the held-out split (kept fixed: fair gate).")


class TrainSettings(_Section):
    model: str = Field(
        "auto",
        description="Model family: elasticnet, ridge, logistic, random_forest, "
        "hist_gradient_boosting; auto = elasticnet (regression) or logistic (classification).",
    )
    params: dict[str, float | int | str | bool | None] = Field(
        {}, description="Hyperparameters of the family, over its defaults."
    )
    alpha: float | None = Field(None, ge=0, description="Shorthand for params.alpha.")
    l1_ratio: float | None = Field(None, ge=0, le=1, description="Shorthand for params.l1_ratio.")
    seed: int = Field(42, description="Estimator random_state.")
    plots: bool = Field(True, description="Log evaluation plots (PNG) with each run.")


class TrackingSettings(_Section):
    uri: str | None = Field(None, description="MLflow tracking URI; default SQLite in home.")
    registry_uri: str | None = Field(None, description="MLflow registry URI; default = tracking.")
    experiment: str = Field("mlrig", description="MLflow experiment name.")
    model_name: str = Field("wine-quality", description="Registered model name.")
    champion_metric: str | None = Field(
        None, description="Gate metric; None = rmse (regression) or ks (classification)."
    )
    promotion_margin: float = Field(
        0.0, ge=0, description="A challenger must beat the champion by more than this."
    )
    # A store that refuses connections made MLflow retry silently for 1 min 44 s; mlrig
    # probes a database or server store first and fails within seconds instead.
    connect_timeout: float = Field(
        5.0, gt=0, le=300, description="Seconds one probe of a database/server store may take."
    )
    connect_retries: int = Field(
        2, ge=0, le=20, description="Probes retried (1 s, 2 s, 4 s … apart) before giving up."
    )


class PipelineSettings(_Section):
    orchestrator: Literal["auto", "prefect", "local"] = Field(
        "auto", description="auto = Prefect when PREFECT_API_URL is set, else in-process."
    )


class TuneSettings(_Section):
    trials: int = Field(50, ge=1, description="Finished trials the study should reach.")
    timeout: float | None = Field(None, gt=0, description="Stop starting trials after S seconds.")
    models: list[str] | None = Field(None, description="Families to search; None = train.model.")
    workers: int = Field(1, ge=1, description="Local processes sharing the study.")
    storage: str | None = Field(
        None, description="Optuna RDB URL; default SQLite optuna.db in home."
    )
    study: str | None = Field(None, description="Study name; default = tracking.model_name.")
    validation_size: float = Field(
        0.2, gt=0, lt=1, description="Share of the training rows each trial is scored on."
    )
    seed: int = Field(42, description="TPE sampler seed.")


class ServingSettings(_Section):
    model: str | None = Field(None, description="NAME@ALIAS to serve; default MODEL@champion.")
    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, description="uvicorn worker processes.")
    max_batch_rows: int = Field(10_000, ge=1, description="Largest accepted batch.")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Request size limit.")
    poll_interval: float = Field(
        10.0, ge=0, description="Seconds between registry polls for alias moves; 0 = never."
    )
    # uvicorn closes an idle connection after 5 s, exactly when httpx's pool (5 s) and others may
    # reuse it: the request then fails with a reset (seen under load in CI). Idle connections
    # are kept longer than clients' pools and load balancers' idle timeouts (60 s) keep them.
    keep_alive: int = Field(
        75, ge=1, le=3600, description="Seconds an idle HTTP keep-alive connection stays open."
    )
    id_fields: list[str] = Field(
        ["id", "*_id"],
        description="Names (fnmatch patterns) a request field or an input column is read as the "
        "record id by, unless the model has a feature of that name (e.g. the zoomcamp's ride_id).",
    )
    admin_token: SecretStr | None = Field(None, description="Bearer token for /admin/*.")
    predict_token: SecretStr | None = Field(None, description="Optional token for predictions.")
    # Overload: a stalled store must not pile up requests and memory (predictions/writer.py).
    log_queue_rows: int = Field(
        50_000,
        ge=1,
        description="Most prediction rows waiting for the log (queued or committing); past it "
        "/predict answers 503 + Retry-After and /ready 503.",
    )
    commit_timeout_ms: float = Field(
        5_000.0,
        gt=0,
        le=600_000,
        description="Longest a request waits for its rows to commit; then 503 + Retry-After "
        "(at-least-once: the rows may still be logged; a retry with the same id is deduplicated).",
    )
    retry_after_s: int = Field(
        1, ge=1, le=3600, description="Retry-After (s) sent with a 503 from the prediction log."
    )

    @model_validator(mode="after")
    def _largest_batch_fits_the_log(self) -> ServingSettings:
        # a batch over the bound would only ever get in when nothing else waits: starved
        if self.log_queue_rows < self.max_batch_rows:
            raise ValueError(
                f"log_queue_rows ({self.log_queue_rows}) must be at least max_batch_rows "
                f"({self.max_batch_rows})"
            )
        return self

    # Keeping the served model when the registry is down (serving/follower.py, startup.py).
    model_uri: str | None = Field(
        None,
        description="Serve this MLflow model (runs:/…, a local model directory) without the "
        "registry and never poll; exclusive with model.",
    )
    poll_max_interval: float = Field(
        300.0, gt=0, description="Back-off cap: each failed poll doubles the wait up to this (s)."
    )
    registry_timeout: float = Field(
        30.0, gt=0, description="Longest wait (s) for one registry call or model download."
    )
    cache: bool = Field(
        True,
        description="Keep a copy of the served version under <home>/serving-cache and start "
        "from it when the registry is unreachable.",
    )
    # Loading trust: a model file is code from whoever can write the registry and artifacts.
    allow_pickle: bool = Field(
        False,
        description="Load models saved as pickle/cloudpickle (they run arbitrary code on "
        "load); False = skops files only.",
    )
    trusted_types: list[str] = Field(
        [
            "sklearn.tree._tree.Tree",
            "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        ],
        description="Types a skops file may hold beyond skops' safe defaults (the trees of "
        "mlrig's own forests and boosters). The list a model carries in its MLmodel is ignored.",
    )

    @field_validator("trusted_types")
    @classmethod
    def _dotted_names(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if not _DOTTED.fullmatch(t)]
        if bad:
            raise ValueError(
                f"expected fully qualified type names like 'pkg.module.Type', got {bad}"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ServingSettings:
        if self.model and self.model_uri:
            raise ValueError("model and model_uri are exclusive: serve a registry ref or a URI")
        return self


class PredictionsSettings(_Section):
    url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in home.")
    commit_interval_ms: float = Field(
        0.0,
        ge=0,
        description="Extra wait (ms) for company before a group commit; 0 = commit as soon as the writer is free.",
    )
    # A store outage while serving (predictions/spool.py): log locally, replay when it is back.
    spool: bool = Field(
        True,
        description="While the store is unreachable, write each group of log records durably "
        "to a local spool before answering, and replay it into the store when it is back; "
        "false = answer 503 while the store is down.",
    )
    spool_dir: Path | None = Field(
        None,
        description="Directory of the spool (one SQLite file per store); default <home>/spool.",
    )
    spool_max_bytes: int = Field(
        1024**3,
        ge=1024 * 1024,
        description="Largest spool (bytes of records); past it requests answer 503 naming the spool.",
    )
    replay_interval: float = Field(
        1.0,
        gt=0,
        le=300,
        description="Seconds between checks of the spool; while the store stays down the wait "
        "doubles on each failed replay, up to 10 s.",
    )


class MonitoringSettings(_Section):
    since: str = Field(
        "24h", description="Default window: an age (30m, 24h, 7d) or an ISO time; --window N wins."
    )
    drift_share: float = Field(
        0.5, gt=0, le=1, description="The dataset drifts when this share of features drifts."
    )
    min_rows: int = Field(100, ge=1, description="Fewest predictions for a drift verdict.")
    min_labels: int = Field(
        30, ge=1, description="Fewest predictions with feedback for a live-quality verdict."
    )
    metric: str | None = Field(
        None, description="Live metric compared with offline; None = the gate metric."
    )
    tolerance: float = Field(
        0.1, ge=0, description="Degraded when live is worse than offline by more than this."
    )
    tolerance_mode: Literal["relative", "absolute"] = Field(
        "relative", description="relative = a fraction of the offline value; absolute = units."
    )
    reference_rows: int = Field(
        5000, ge=100, description="Training rows kept (seeded sample) as the drift reference."
    )
    report_rows: int = Field(
        50_000, ge=100, description="Largest window rendered by Evidently (--html); sampled above."
    )
    track: bool = Field(True, description="Log each monitoring pass as an MLflow run.")


class LoopSettings(_Section):
    """When `mlrig loop` retrains, what a retrain trains on, and which rows the gate trusts."""

    drift_share: float | None = Field(
        0.5, gt=0, le=1, description="Retrain when this share of features drifts; None = never."
    )
    degradation: float | None = Field(
        0.1,
        ge=0,
        description="Retrain when the live metric is worse than offline by more than this "
        "(monitoring.tolerance_mode units); None = never.",
    )
    new_labels: int | None = Field(
        None, ge=1, description="Retrain when this many labelled rows arrived since the last one."
    )
    always: bool = Field(False, description="Retrain on every pass (a plain retraining schedule).")
    cooldown: str = Field("30m", description="No retrain sooner than this after the last one.")
    since: str | None = Field(
        None,
        description="Labelled production rows used by a retrain: an age or ISO time; None = all.",
    )
    recent_share: float = Field(
        0.3,
        ge=0,
        lt=1,
        description="Newest share of the labelled production rows held out for the gate, never trained on.",
    )
    gate: Literal["auto", "frozen", "recent"] = Field(
        "auto",
        description="Which rows decide promotion: auto = the recent slice once it has "
        "recent_min_rows rows, else the frozen evaluation set.",
    )
    recent_min_rows: int = Field(
        100, ge=1, description="Labelled rows the recent slice needs to govern the gate."
    )
    lock_ttl: float = Field(
        60.0, gt=0, description="Seconds a crashed pass keeps its lease before another may start."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MLRIG_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    home: Path = Field(Path(".mlrig"), description="Where embedded stores live.")
    data: DataSettings = DataSettings()
    train: TrainSettings = TrainSettings()
    tracking: TrackingSettings = TrackingSettings()
    pipeline: PipelineSettings = PipelineSettings()
    tune: TuneSettings = TuneSettings()
    serving: ServingSettings = ServingSettings()
    predictions: PredictionsSettings = PredictionsSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    loop: LoopSettings = LoopSettings()

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def tracking_uri(self) -> str:
        return (
            os.environ.get("MLFLOW_TRACKING_URI")
            or self.tracking.uri
            or f"sqlite:///{self.home_dir / 'mlflow.db'}"
        )

    @property
    def registry_uri(self) -> str:
        return (
            os.environ.get("MLFLOW_REGISTRY_URI") or self.tracking.registry_uri or self.tracking_uri
        )

    @property
    def artifact_root(self) -> Path:
        return self.home_dir / "artifacts"

    @property
    def tune_storage(self) -> str:
        # Optuna's own file, not mlflow.db: both keep an alembic_version table.
        return self.tune.storage or f"sqlite:///{self.home_dir / 'optuna.db'}"

    @property
    def predictions_url(self) -> str:
        return self.predictions.url or f"sqlite:///{self.home_dir / 'predictions.db'}"

    @property
    def spool_dir(self) -> Path:
        return (self.predictions.spool_dir or self.home_dir / "spool").expanduser()

    @property
    def served_model(self) -> str:
        return self.serving.model or f"{self.tracking.model_name}@champion"


class _DictSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._data


def _flat_env() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (section, key) in _FLAT_ENV.items():
        if name in os.environ:
            out.setdefault(section, {})[key] = os.environ[name]
    return out


def find_config_file(config_file: Path | str | None) -> Path | None:
    """The explicit file (must exist), else ``./mlrig.toml`` when present, else None."""
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {path}: not found")
        return path
    default = Path.cwd() / CONFIG_FILE_NAME
    return default if default.is_file() else None


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from exc


def load_settings(
    config_file: Path | str | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build the settings from defaults, the config file, the environment and ``overrides``.

    ``overrides`` is nested like the file (``{"train": {"alpha": 0.3}}``); None values are
    dropped so unset CLI flags do not mask lower layers. Raises ConfigError naming the file and
    the field on bad input.
    """
    path = find_config_file(config_file)
    file_data = read_config_file(path) if path else {}
    init = _drop_none(dict(overrides or {}))

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                env_settings,
                _DictSource(settings_cls, _flat_env()),
                _DictSource(settings_cls, file_data),
            )

    try:
        return _Loaded(**init)
    except ValidationError as exc:
        where = f"config file {path}" if path else "settings"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from exc


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")


def parse_duration(text: str, what: str = "duration") -> dt.timedelta:
    """``30s``, ``15m``, ``12h``, ``7d`` or combinations (``1h30m``); raises ConfigError
    naming ``what``."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or _DURATION.sub("", compact).strip():
        raise ConfigError(
            f"{what} {text!r}: expected a number and a unit s, m, h or d (e.g. 30s, 2m, 1h30m)"
        )
    return dt.timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def parse_since(text: str | None, what: str = "--since") -> dt.datetime | None:
    """ISO date/time (UTC when no zone) or an age like ``30m``, ``12h``, ``7d`` before now."""
    if not text:
        return None
    if _DURATION.fullmatch(text.strip().lower()) or text.strip()[-1:] in _UNITS:
        return dt.datetime.now(dt.UTC) - parse_duration(text, what)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(
            f"{what} {text!r}: expected an ISO date/time or an age like 12h or 7d"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if not value:
                continue
        if value is not None:
            out[key] = value
    return out
