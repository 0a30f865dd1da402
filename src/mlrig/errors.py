"""The mlrig error hierarchy: one root, a few classes per area; messages name the object."""

from __future__ import annotations


class MlrigError(Exception):
    """Root of every error mlrig raises on purpose; the CLI maps it to an exit code."""

    exit_code = 1


class ConfigError(MlrigError):
    """A config file or setting is malformed or inconsistent."""

    exit_code = 2


class DataSourceError(MlrigError):
    """A dataset cannot be read: missing file, unreachable URL, unknown format."""

    exit_code = 3


class DataValidationError(MlrigError):
    """A dataset was read but breaks the feature contract (columns, types, NaNs, target)."""

    exit_code = 3


class TrackingError(MlrigError):
    """The MLflow tracking or registry store refused an operation."""

    exit_code = 4


class ModelNotFoundError(TrackingError):
    """A registered model, version or alias does not exist."""


class ModelRefusedError(ModelNotFoundError):
    """A model version exists but will not be served: a serialization or type the serving
    settings do not trust, no input signature, or another input contract than the served one."""


class StoreUnavailableError(MlrigError):
    """The prediction store cannot be reached or written."""

    exit_code = 5


class TuningError(MlrigError):
    """A study could not run or produced no usable trial."""

    exit_code = 6


class MonitoringError(MlrigError):
    """A monitoring pass cannot run: a version has no reference profile and none can be
    built, or there is nothing to report on."""

    exit_code = 2


class BusyError(MlrigError):
    """Another process holds the lease this work needs (a retrain of the same model)."""

    exit_code = 7
