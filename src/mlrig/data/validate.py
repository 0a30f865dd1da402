"""Validate a raw frame against the feature contract with pandera, before any training.

Every problem is collected (lazy validation) and reported in one message naming the source
file and each offending column, so a user fixes the file once rather than once per error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlrig.data.schema import FeatureSchema
from mlrig.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

_MAX_EXAMPLES = 3


def validate_frame(
    frame: pd.DataFrame, source: str, target: str, features: list[str] | None = None
) -> tuple[pd.DataFrame, FeatureSchema]:
    """Check ``frame`` and return it coerced to float64 with its FeatureSchema.

    With ``features`` given, missing and extra columns are errors; otherwise every column but
    the target is a feature. Raises DataValidationError naming ``source`` and the columns.
    """
    import pandera.errors as pa_errors
    import pandera.pandas as pa

    if target not in frame.columns:
        raise DataValidationError(
            f"data file {source}: target column {target!r} is missing "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    schema = (
        FeatureSchema(tuple(features), target)
        if features
        else FeatureSchema.from_columns([str(c) for c in frame.columns], target)
    )
    if not schema.features:
        raise DataValidationError(f"data file {source}: no feature columns besides {target!r}")
    columns: dict[str, Any] = {
        name: pa.Column("float64", coerce=True, nullable=False) for name in schema.features
    }
    columns[target] = pa.Column(
        "float64",
        coerce=True,
        nullable=False,
        checks=pa.Check(lambda s: s.nunique() > 1, error="target is constant", name="not_constant"),
    )
    pa_schema = pa.DataFrameSchema(columns, strict=bool(features), ordered=False)
    try:
        validated = pa_schema.validate(frame, lazy=True)
    except pa_errors.SchemaErrors as exc:
        raise DataValidationError(_describe(source, exc.failure_cases)) from exc
    return validated[[*schema.features, target]], schema


_CHECK_TEXT = {
    "column_in_dataframe": "missing column",
    "column_in_schema": "unexpected extra column",
    "not_nullable": "missing values (NaN)",
    "target is constant": "target is constant (one distinct value)",
}


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
        if text in ("non-numeric values", "missing values (NaN)"):
            rows = [int(i) + 2 for i in group["index"].dropna().head(_MAX_EXAMPLES)]  # file lines
            values = [repr(v) for v in group["failure_case"].head(_MAX_EXAMPLES)]
            detail = f" ({len(group)} row{'s' if len(group) > 1 else ''}, e.g. line {', '.join(map(str, rows))}"
            detail += f": {', '.join(values)})" if text == "non-numeric values" else ")"
        lines.append(f"  column {col!r}: {text}{detail}")
    return "\n".join(lines)
