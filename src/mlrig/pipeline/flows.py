"""The pipeline's Prefect 3 flows: module-level, deployable, with plain JSON parameters.

A flow rebuilds its ``Settings`` in the process that runs it (a scheduled run starts in a
process of its own), from ``config`` (a TOML path), ``home`` and ``overrides`` (nested like the
file). ``train_flow`` runs one task per pipeline step; ``loop_flow`` runs one pass of the closed
loop. Both are thin shells: the work is in compose.py and loop.py.

Training holds the store lease ``train:<model>`` for its whole length (runner.training_lease;
the loop holds ``loop:<model>`` for a pass). Prefect's own deployment concurrency limit can keep
a slot forever when a run's process dies (shared/FACTS.md); the lease lapses when its holder
dies, so a crashed run never blocks the schedule.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from prefect import Flow, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from mlrig.config import Settings, load_settings
from mlrig.errors import BusyError, ConfigError
from mlrig.pipeline.compose import OnStep, StepCall, Trainer, train_pipeline
from mlrig.pipeline.results import RunResult
from mlrig.redact import MASK, has_credentials

TRAIN_FLOW = "mlrig-train"
LOOP_FLOW = "mlrig-loop"


@dataclass(frozen=True)
class Skipped:
    """A run that did not train because another holder had the model's training lease."""

    model_name: str
    reason: str
    status: str = "skipped"


@dataclass(frozen=True)
class _Hooks:
    settings: Settings | None
    on_step: OnStep | None
    trainer: Trainer | None


# What an in-process caller (`mlrig run` in prefect mode) hands a flow beside its parameters:
# its settings as built (they may hold secrets, which parameters must not: Prefect stores and
# shows them) and its progress callbacks. A deployed run has none.
_HOOKS: ContextVar[_Hooks | None] = ContextVar("mlrig_flow_hooks", default=None)


@contextlib.contextmanager
def in_process(
    settings: Settings, on_step: OnStep | None, trainer: Trainer | None
) -> Iterator[None]:
    """Within the block, a flow called in this thread uses ``settings`` (its parameters then
    only describe them), reports steps to ``on_step`` and trains with ``trainer`` (the one its
    ``trainer`` parameter names)."""
    token = _HOOKS.set(_Hooks(settings, on_step, trainer))
    try:
        yield
    finally:
        _HOOKS.reset(token)


def _current_hooks() -> _Hooks:
    # A flow's function is cloudpickled by value for the runner's subprocess; the ContextVar
    # itself cannot be, so the flows reach it through this (pickled by reference).
    return _HOOKS.get() or _Hooks(None, None, None)


def flow_settings(
    config: str | None, home: str | None, overrides: dict[str, Any] | None
) -> Settings:
    """The settings a flow run works with (raises ConfigError naming the file and field).

    A URL parameter carrying a credential, or a masked one (``***``, as `mlrig run` records
    them), is refused: Prefect stores and shows parameters, and a masked URL cannot be
    fetched. The credential belongs in the config file (``config`` names it) or the
    environment of the process that runs the flow."""
    found = secret_parameters({"overrides": overrides or {}, "home": home, "config": config})
    if found:
        raise ConfigError(
            f"flow parameter {', '.join(found)}: carries a credential (a password or token in a "
            "URL, or one masked as ***); Prefect stores and shows flow parameters, so put the "
            "URL in the config file the `config` parameter names, or in the environment of the "
            "process running the flow (MLRIG_DATA__SOURCE, MLFLOW_TRACKING_URI, …)"
        )
    merged = dict(overrides or {})
    if home is not None:
        merged["home"] = home
    return load_settings(config, merged)


def secret_parameters(parameters: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the string values in ``parameters`` (nested dicts and lists walked)
    that hold a credential in a URL, or a masked one."""
    found: list[str] = []
    for key, value in parameters.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found += secret_parameters(value, f"{name}.")
        elif isinstance(value, list | tuple):
            found += secret_parameters({str(i): v for i, v in enumerate(value)}, f"{name}.")
        elif isinstance(value, str) and (
            has_credentials(value) or has_credentials(value.replace(MASK, "x"))
        ):
            found.append(name)
    return found


def _trainer(name: str) -> Trainer:
    if name == "train":
        from mlrig.pipeline.steps import train_step

        return train_step
    if name == "tune":
        from mlrig.pipeline.tuning import make_tune_step

        return make_tune_step()
    raise ValueError(f"trainer {name!r}: expected 'train' or 'tune'")


def _task_call() -> StepCall:
    tasks: dict[Callable[..., Any], Any] = {}

    def call(fn: Callable[..., Any], *args: Any) -> Any:
        if fn not in tasks:
            # Inputs are DataFrames and models: never cache or hash them.
            tasks[fn] = task(name=fn.__name__.removesuffix("_step"), cache_policy=NO_CACHE)(fn)
        return tasks[fn](*args)

    return call


@flow(name=TRAIN_FLOW, log_prints=False, validate_parameters=False)
def train_flow(
    config: str | None = None,
    home: str | None = None,
    overrides: dict[str, Any] | None = None,
    trainer: str = "train",
) -> RunResult | Skipped:
    """Train, evaluate, register and gate one model (``trainer``: "train" = one fit, "tune" =
    an Optuna study), one task per step. Skipped while another holder has ``train:<model>``."""
    from mlrig.pipeline.runner import training_lease

    hooks = _current_hooks()
    settings = hooks.settings or flow_settings(config, home, overrides)
    trainer_fn = hooks.trainer or _trainer(trainer)
    try:
        with training_lease(settings, f"{TRAIN_FLOW} ({trainer})"):
            return train_pipeline(
                settings,
                mode="prefect",
                call=_task_call(),
                on_step=hooks.on_step,
                trainer=trainer_fn,
            )
    except BusyError as exc:  # raised before training starts: the run completes, skipped
        get_run_logger().warning(str(exc))
        return Skipped(settings.tracking.model_name, str(exc))


@flow(name=LOOP_FLOW, log_prints=False, validate_parameters=False)
def loop_flow(
    config: str | None = None, home: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One pass of the closed loop (monitor → policy → maybe retrain → gate → promote) for
    the configured model; returns the pass's decision trail."""
    from mlrig.pipeline.loop import loop_pass

    settings = flow_settings(config, home, overrides)
    return loop_pass(settings, trigger="schedule", call=_task_call(), mode="prefect").as_dict()


FLOWS: dict[str, Flow[..., Any]] = {"train": train_flow, "loop": loop_flow}
