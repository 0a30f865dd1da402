"""mlrig: the MLOps loop on a laptop — ingest, train, track, register, serve, monitor, retrain.

The Python API mirrors the CLI; heavy libraries are imported only when a function runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrig._version import __version__

__all__ = ["__version__", "run"]

if TYPE_CHECKING:
    from mlrig.pipeline.steps import RunResult


def run(
    data: str | Path | None = None,
    *,
    target: str | None = None,
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
    from mlrig.config import load_settings
    from mlrig.pipeline.runner import run_training

    layered: dict[str, Any] = {
        "data": {"source": str(data) if data is not None else None, "target": target},
        "train": {"alpha": alpha, "l1_ratio": l1_ratio},
        "tracking": {"experiment": experiment, "model_name": model_name},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(layered.get(key), dict):
            layered[key] = {**layered[key], **value}
        else:
            layered[key] = value
    return run_training(load_settings(config, layered))
