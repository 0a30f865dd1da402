"""mlrig: the MLOps loop on a laptop — ingest, train, track, register, serve, monitor, retrain.

The Python API mirrors the CLI; heavy libraries are imported only when a function runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrig._version import __version__

__all__ = ["__version__", "predict", "run", "tune"]

if TYPE_CHECKING:
    import pandas as pd

    from mlrig.pipeline.results import RunResult
    from mlrig.serving.predictor import Predictor


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


def predict(
    frame: pd.DataFrame,
    model: str | None = None,
    *,
    config: str | Path | None = None,
    **overrides: Any,
) -> pd.DataFrame:
    """Score ``frame`` with a registered model, as ``mlrig predict`` scores a file.

    ``model`` is NAME@ALIAS or NAME/VERSION (default: the configured model @champion). Returns
    a DataFrame with ``frame``'s index: the id column when ``frame`` has one ("id" or "*_id",
    not a feature), ``prediction``, and for a classifier ``probability`` (binary) or
    ``probability_<class>``. Nothing is logged. Validation is the server's: DataValidationError
    names the row (index label), the column and the value. The model is loaded once per
    (home, tracking store, model) in this process: an alias moved later is not followed until
    ``predict.cache_clear()``.
    """
    from mlrig.errors import DataValidationError
    from mlrig.serving.batch_scoring import BadCell, BadColumns, ChunkScorer, frame_table

    settings = _settings(config, {}, overrides)
    predictor = _cached_predictor(
        str(settings.home_dir), settings.tracking_uri, model or settings.served_model, settings
    )
    columns = [str(c) for c in frame.columns]
    try:
        scorer = ChunkScorer(predictor, columns, settings.serving.id_fields)
        out = scorer.score(frame_table(frame)).table.to_pandas()
    except BadColumns as exc:
        raise DataValidationError(f"frame: {exc}") from exc
    except BadCell as exc:
        where = "" if exc.row is None else f"row {frame.index[exc.row]!r}, "
        raise DataValidationError(f"frame: {where}column {exc.column!r}: {exc.problem}") from exc
    out.index = frame.index
    return out


_PREDICTORS: dict[tuple[str, str, str], Predictor] = {}


def _cached_predictor(home: str, tracking_uri: str, ref: str, settings: Any) -> Predictor:
    key = (home, tracking_uri, ref)
    found = _PREDICTORS.get(key)
    if found is None:
        from mlrig.serving.batch_model import load_predictor

        found = _PREDICTORS[key] = load_predictor(settings, ref)
    return found


predict.cache_clear = _PREDICTORS.clear  # type: ignore[attr-defined]
