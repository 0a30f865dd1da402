"""Validate a raw frame against the feature contract with pandera, before any training.

Every problem is collected (lazy validation) and reported in one message naming the source
file and each offending column, so a user fixes the file once rather than once per error.
A valid all-numeric frame is checked without importing pandera (≈0.4–0.8 s per process); any
doubt goes to pandera, which decides and words the errors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mlrig.data.id_columns import id_names
from mlrig.data.schema import FeatureSchema, Task
from mlrig.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
_MAX_EXAMPLES = 3
# The largest magnitude trained on: scaling squares every value and sums the squares, which
# overflows float64 (≈1.8e308) beyond ≈1e154 and then fits on NaN; 1e150 leaves room for
# sums over 10⁸ rows. inf, -inf and "1e999" (read as inf) are refused by the same check.
MAX_ABS = 1e150
_MAX_CLASSES = 50


@dataclass(frozen=True)
class Contract:
    """What the user said about the columns (``[data]`` in the config)."""

    target: str
    features: list[str] | None = None
    categorical: list[str] | None = None
    drop: list[str] = field(default_factory=list)
    task: Literal["auto", "regression", "classification"] = "auto"
    positive_threshold: float | None = None
    # fnmatch patterns of record-id columns (serving.id_fields): dropped unless listed as features
    id_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Validated:
    frame: pd.DataFrame  # features (float64 or str) then the target
    schema: FeatureSchema
    note: str | None  # set when the task was inferred


def validate_frame(
    frame: pd.DataFrame, source: str, contract: Contract, constant_target: bool = False
) -> Validated:
    """Check ``frame`` and return it coerced (numeric → float64, categorical → str).

    A constant target is an error unless ``constant_target`` (rows that join a dataset that
    varies, such as a retrain's production rows, may all share one label).

    With ``features`` given, missing and extra columns are errors; otherwise every column but
    the target (and ``drop``) is a feature. Raises DataValidationError naming ``source`` and
    the columns.
    """
    target = contract.target
    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if duplicated:
        raise DataValidationError(
            f"data file {source}: duplicated column name(s) {', '.join(map(repr, duplicated))} "
            "(each column needs a unique name)"
        )
    _check_contract(contract, source)
    if target not in frame.columns:
        raise DataValidationError(
            f"data file {source}: target column {target!r} is missing "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    unknown_drop = [c for c in contract.drop if c not in frame.columns]
    if unknown_drop:
        raise DataValidationError(
            f"data file {source}: data.drop names missing column(s) {', '.join(unknown_drop)}"
        )
    frame = frame.drop(columns=[*contract.drop, *_id_columns(frame, contract)])
    if frame[target].isna().all():
        raise DataValidationError(
            f"data file {source}: target column {target!r} has no values "
            f"(all {len(frame)} rows are empty)"
        )
    features = contract.features or [str(c) for c in frame.columns if c != target]
    if not features:
        raise DataValidationError(f"data file {source}: no feature columns besides {target!r}")
    categorical = _categorical(frame, features, contract, source)
    task, note = _task(frame[target], contract, source)
    spec = _Spec(
        features,
        categorical,
        target,
        target_float=task == "regression" or contract.positive_threshold is not None,
        strict=bool(contract.features),
        varied_target=not constant_target,
    )
    validated = _numeric_without_pandera(frame, spec)
    if validated is None:
        validated = _with_pandera(frame, source, spec)
    out = validated[[*features, target]]
    if task == "classification":
        out = out.assign(**{target: _labels(out[target], contract, source)})
    schema = FeatureSchema(
        tuple(features), target, tuple(f for f in features if f in categorical), task
    )
    return Validated(out, schema, note)


def _id_columns(frame: pd.DataFrame, contract: Contract) -> list[str]:
    """Columns that carry a record id (ml-pipes' ``id``): an identifier is no feature, and
    serving reads the same names as the request's id (mlrig.predictions.ids.id_field), so a
    model trained on one could never be sent it. A column listed in ``features`` stays one."""
    listed = set(contract.features or ()) | {contract.target, *contract.drop}
    found = id_names([str(c) for c in frame.columns], listed, contract.id_columns)
    if found:
        log.info("id column(s) %s: not used as features", ", ".join(map(repr, found)))
    return found


def _check_contract(contract: Contract, source: str) -> None:
    """The config's column lists must not contradict themselves: a target among the features
    would train on the answer, a repeated feature would be fed twice."""
    target, features = contract.target, contract.features or []
    if target in features:
        raise DataValidationError(
            f"data file {source}: data.features lists the target column {target!r} "
            "(a model must not be given the answer; remove it from data.features)"
        )
    if target in contract.drop:
        raise DataValidationError(
            f"data file {source}: data.drop names the target column {target!r}"
        )
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise DataValidationError(
            f"data file {source}: data.features lists {', '.join(map(repr, repeated))} "
            "more than once"
        )


@dataclass(frozen=True)
class _Spec:
    """The column contract validation enforces."""

    features: list[str]
    categorical: set[str]  # features coerced to str; the others to float64
    target: str
    target_float: bool  # coerce the target to float64 (else it is left as it is)
    strict: bool  # columns beyond the features and the target are errors
    varied_target: bool  # a constant target is an error


def _with_pandera(frame: pd.DataFrame, source: str, spec: _Spec) -> pd.DataFrame:
    """``frame`` validated and coerced by pandera; DataValidationError lists every problem."""
    import pandera.errors as pa_errors
    import pandera.pandas as pa

    # inf, -inf and numbers too large for float64 ("1e999") pass a float64 dtype check and
    # fail later inside scikit-learn with a traceback: refused here, row by row.
    finite = pa.Check(_finite, error="non-finite values", name="finite")
    columns: dict[str, Any] = {
        name: pa.Column(str, coerce=True, nullable=False)
        if name in spec.categorical
        else pa.Column("float64", coerce=True, nullable=False, checks=finite)
        for name in spec.features
    }
    target_checks = [finite] if spec.target_float else []
    if spec.varied_target:
        target_checks.append(
            pa.Check(lambda s: s.nunique() > 1, error="target is constant", name="not_constant")
        )
    columns[spec.target] = pa.Column(
        "float64" if spec.target_float else None,
        coerce=True,
        nullable=False,
        checks=target_checks or None,
    )
    pa_schema = pa.DataFrameSchema(columns, strict=spec.strict, ordered=False)
    try:
        return pa_schema.validate(frame, lazy=True)
    except pa_errors.SchemaErrors as exc:
        raise DataValidationError(_describe(source, exc.failure_cases)) from exc


def _finite(column: pd.Series) -> pd.Series:
    """True where a value is a number scikit-learn can scale (finite, |x| ≤ ``MAX_ABS``);
    values that are no number at all count as fine here (pandera runs checks even when
    coercion failed, and reports those itself)."""
    import numpy as np
    import pandas as pd

    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        ok = np.isnan(numbers) | (np.abs(numbers) <= MAX_ABS)
    return pd.Series(ok, index=column.index)


def _numeric_without_pandera(frame: pd.DataFrame, spec: _Spec) -> pd.DataFrame | None:
    """What ``_with_pandera`` returns for a valid all-numeric frame, or None whenever pandera's
    judgement is needed (a categorical, missing or extra column, a non-NumPy dtype, a NaN, a
    constant target): pandera's import and first validation cost ≈0.4–0.8 s per process, these
    checks ≈10 ms, and most training frames are numeric and valid."""
    import numpy as np

    columns = [*spec.features, spec.target]
    if (
        spec.categorical
        or not frame.columns.is_unique
        or len(set(columns)) != len(columns)
        or any(c not in frame.columns for c in columns)
        or (spec.strict and len(frame.columns) != len(columns))
        or any(
            not isinstance(frame[c].dtype, np.dtype) or frame[c].dtype.kind not in "biuf"
            for c in columns
        )
    ):
        return None
    floats = columns if spec.target_float else spec.features
    out = frame.astype(dict.fromkeys(floats, "float64"))
    values = out[floats].to_numpy()
    if out[columns].isna().to_numpy().any() or not (np.abs(values) <= MAX_ABS).all():
        return None
    if spec.varied_target and out[spec.target].nunique() <= 1:
        return None
    return out


def _categorical(
    frame: pd.DataFrame, features: list[str], contract: Contract, source: str
) -> set[str]:
    import pandas as pd

    if contract.categorical is not None:
        unknown = [c for c in contract.categorical if c not in features]
        if unknown:
            raise DataValidationError(
                f"data file {source}: data.categorical names {', '.join(map(repr, unknown))}, "
                f"which {'is' if len(unknown) == 1 else 'are'} not a feature column"
            )
        return set(contract.categorical)
    return {
        c
        for c in features
        if c in frame.columns
        and not pd.api.types.is_numeric_dtype(frame[c])
        and not _mostly_numbers(frame[c])
    }


def _mostly_numbers(column: pd.Series) -> bool:
    """A text column whose values parse as numbers is a numeric column with typos (reported
    by validation), not a categorical one."""
    import pandas as pd

    sample = column.dropna().head(200)
    return bool(len(sample)) and pd.to_numeric(sample, errors="coerce").notna().mean() >= 0.5


def _task(target: pd.Series, contract: Contract, source: str) -> tuple[Task, str | None]:
    import pandas as pd

    if contract.positive_threshold is not None:
        if contract.task == "regression":
            raise DataValidationError(
                f"data file {source}: data.positive_threshold makes labels, so data.task "
                "must be 'classification' (or 'auto')"
            )
        return "classification", None
    if contract.task != "auto":
        return contract.task, None
    numeric = pd.api.types.is_numeric_dtype(target)
    distinct = target.nunique(dropna=True)
    if not numeric or pd.api.types.is_bool_dtype(target) or distinct == 2:
        return "classification", (
            f"task inferred as classification: target {target.name!r} has {distinct} "
            "distinct values (set data.task to choose)"
        )
    return "regression", (
        f"task inferred as regression: target {target.name!r} is numeric with {distinct} "
        "distinct values (set data.task to choose)"
    )


def _labels(target: pd.Series, contract: Contract, source: str) -> pd.Series:
    """Integer class labels: thresholded, or the column's own integers/booleans."""
    import numpy as np

    if contract.positive_threshold is not None:
        labels = (target.astype("float64") >= contract.positive_threshold).astype("int64")
        if labels.nunique() < 2:
            raise DataValidationError(
                f"data file {source}: data.positive_threshold {contract.positive_threshold} "
                f"puts every row of {target.name!r} in one class"
            )
        return labels
    values = target.to_numpy()
    if values.dtype == bool:
        return target.astype("int64")
    try:
        as_float = values.astype("float64")
    except (TypeError, ValueError):
        raise DataValidationError(
            f"data file {source}: column {target.name!r}: classification labels must be "
            "integers or booleans (encode text labels, or set data.positive_threshold)"
        ) from None
    bad = ~np.isfinite(as_float)
    if bad.any():
        lines = ", ".join(str(i + 2) for i in np.flatnonzero(bad)[:_MAX_EXAMPLES])  # file lines
        raise DataValidationError(
            f"data file {source}: column {target.name!r}: {int(bad.sum())} non-finite class "
            f"label(s) (inf or NaN), e.g. line {lines}"
        )
    if not np.all(np.mod(as_float, 1) == 0):
        raise DataValidationError(
            f"data file {source}: column {target.name!r}: classification labels must be "
            "whole numbers (set data.task = 'regression' for a continuous target)"
        )
    if len(np.unique(as_float)) > _MAX_CLASSES:
        raise DataValidationError(
            f"data file {source}: column {target.name!r}: more than {_MAX_CLASSES} classes; "
            "is this a regression target? (set data.task = 'regression')"
        )
    return target.astype("int64")


_CHECK_TEXT = {
    "column_in_dataframe": "missing column",
    "column_in_schema": "unexpected extra column",
    "not_nullable": "missing values (NaN)",
    "target is constant": "target is constant (one distinct value)",
    "non-finite values": f"non-finite or too large values (inf, -inf, |x| > {MAX_ABS:g})",
}
_ROW_DETAIL = ("non-numeric values", "missing values (NaN)", _CHECK_TEXT["non-finite values"])


def _describe(source: str, failures: pd.DataFrame) -> str:
    lines = [f"data file {source}: failed validation"]
    for (column, check), group in failures.groupby(["column", "check"], dropna=False, sort=False):
        col = column if isinstance(column, str) else group["failure_case"].iloc[0]
        if str(check).startswith("dtype("):
            continue  # the coercion failure above already names the column and values
        text = _CHECK_TEXT.get(str(check).split("(")[0])
        if text is None and str(check).startswith("coerce_dtype"):
            text = "non-numeric values"
        text = text or str(check)
        detail = ""
        if text in _ROW_DETAIL:
            rows = [int(i) + 2 for i in group["index"].dropna().head(_MAX_EXAMPLES)]  # file lines
            values = [repr(v) for v in group["failure_case"].head(_MAX_EXAMPLES)]
            detail = f" ({len(group)} row{'s' if len(group) > 1 else ''}, e.g. line {', '.join(map(str, rows))}"
            detail += f": {', '.join(values)})" if text != "missing values (NaN)" else ")"
        lines.append(f"  column {col!r}: {text}{detail}")
    return "\n".join(lines)
