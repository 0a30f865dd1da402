"""mlrig: the MLOps loop on a laptop — ingest, train, track, register, serve, monitor, retrain.

The Python API mirrors the CLI; heavy libraries are imported only when a function runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrig._version import __version__

__all__ = ["__version__", "run", "tune"]

if TYPE_CHECKING:
    from mlrig.pipeline.results import RunResult


def _settings(config: str | Path | None, layered: dict[str, Any], overrides: dict[str, Any]) -> Any:
    from mlrig.config import load_settings

    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(layered.get(key), dict):
            layered[key] = {**layered[key], **value}
        else:
            layered[key] = value
    return load_settings(config, layered)


def run(
    data: str | Path | None = None,
    *,
    target: str | None = None,
    model: str | None = None,
    alpha: float | None = None,
    l1_ratio: float | None = None,
    experiment: str | None = None,
    model_name: str | None = None,
    config: str | Path | None = None,
    **overrides: Any,
) -> RunResult:
    """Train, track, register and gate one model, exactly as ``mlrig run`` does.

    Keywords override the config file (``config`` or ./mlrig.toml), which overrides defaults.
    ``overrides`` takes whole sections, e.g. ``home=".mlrig"`` or ``data={"separator": ";"}``.
    Raises an MlrigError subclass on bad input; nothing is registered then.
    """
    from mlrig.pipeline.runner import run_training

    layered: dict[str, Any] = {
        "data": {"source": str(data) if data is not None else None, "target": target},
        "train": {"model": model, "alpha": alpha, "l1_ratio": l1_ratio},
        "tracking": {"experiment": experiment, "model_name": model_name},
    }
    return run_training(_settings(config, layered, overrides))


def tune(
    data: str | Path | None = None,
    *,
    trials: int | None = None,
    models: list[str] | None = None,
    timeout: float | None = None,
    workers: int | None = None,
    study: str | None = None,
    model_name: str | None = None,
    config: str | Path | None = None,
    **overrides: Any,
) -> RunResult:
    """Tune with Optuna, then register and gate the best model, exactly as ``mlrig tune``."""
    from mlrig.pipeline.runner import run_training
    from mlrig.pipeline.tuning import make_tune_step

    layered: dict[str, Any] = {
        "data": {"source": str(data) if data is not None else None},
        "tune": {
            "trials": trials,
            "models": models,
            "timeout": timeout,
            "workers": workers,
            "study": study,
        },
        "tracking": {"model_name": model_name},
    }
    return run_training(_settings(config, layered, overrides), trainer=make_tune_step())
