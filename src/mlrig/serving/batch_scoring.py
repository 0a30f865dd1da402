"""Batch scoring, pure: an Arrow chunk of a table → a validated feature matrix → the served
model's predictions → the output table (id column kept, ``prediction``, probabilities).

The same contract as the server's routes (serving/predictor.py): every feature present, no
unknown column, numbers in numeric features (finite, |x| <= MAX_ABS_VALUE), strings or
integers in categorical ones, ids that follow the client-id rule. It works column by column
on Arrow arrays with NumPy — never row by row in Python — except to name a bad value once one
is known to exist. Where a bad row sits in its *file* (a CSV line, a Parquet row) is the
caller's business: refusals carry the row's index within the chunk.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlrig.predictions.ids import MAX_ID_CHARS, MAX_INT_ID, id_field
from mlrig.predictions.records import PredictionBatch, generated_ids, new_batch_id
from mlrig.serving.bad_request import shown
from mlrig.serving.predictor import MAX_ABS_VALUE, Predictor

ENDPOINT = "batch"  # the prediction log's endpoint for rows scored by `mlrig predict`
PREDICTION = "prediction"
_CONTROL = r"[\x00-\x1f\x7f-\x{9f}]"  # RE2: the client-id rule's forbidden characters


class BadColumns(ValueError):
    """The table's columns do not fit the model: missing features, unknown columns."""


class BadCell(ValueError):
    """One value breaks the contract: ``row`` (index in the chunk; None = the whole column),
    ``column``, and ``problem`` (what is wrong, quoting the value)."""

    def __init__(self, row: int | None, column: str, problem: str) -> None:
        super().__init__(problem)
        self.row = row
        self.column = column
        self.problem = problem


@dataclass(frozen=True)
class Scored:
    """One scored chunk: the output table, and (when logging) the prediction log's record."""

    table: pa.Table
    batch: PredictionBatch | None


class ChunkScorer:
    """Scores chunks of one table (fixed columns) with one Predictor.

    ``columns`` are the table's; the id column is found by ``id_patterns`` (the serving rule,
    mlrig.predictions.ids.id_field); ``keep`` names other columns copied to the output as they
    are. With ``log``, ``score`` also builds the prediction log's record: ids are checked by
    the client-id rule (unique within a chunk), and a table without an id column gets an
    ``id`` column of the generated ids the log keeps, so feedback can name the rows. Without
    it the id column is only copied. Raises BadColumns.
    """

    def __init__(
        self,
        predictor: Predictor,
        columns: Sequence[str],
        id_patterns: Sequence[str],
        keep: Sequence[str] = (),
        log: bool = False,
    ) -> None:
        self.predictor = predictor
        features = predictor.features
        repeated = sorted({c for c in columns if list(columns).count(c) > 1})
        if repeated:
            raise BadColumns(f"duplicated column name(s) {', '.join(map(repr, repeated))}")
        missing = [f for f in features if f not in columns]
        if missing:
            raise BadColumns(
                f"missing feature column(s) {', '.join(map(repr, missing))} of model "
                f"{predictor.name!r} version {predictor.version} (expected {list(features)})"
            )
        try:
            self.id_column = id_field(columns, features, id_patterns)
        except ValueError as exc:
            raise BadColumns(str(exc)) from exc
        absent = [k for k in keep if k not in columns]
        if absent:
            raise BadColumns(f"--keep column(s) {', '.join(map(repr, absent))} not in the table")
        known = {*features, *keep, *([self.id_column] if self.id_column else [])}
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise BadColumns(
                f"unknown column(s) {', '.join(map(repr, unknown))}: not a feature of model "
                f"{predictor.name!r} version {predictor.version}, nor an id column "
                f"({' or '.join(id_patterns)}); drop them, or copy them to the output with "
                "--keep"
            )
        self.keep = tuple(keep)
        self.log = log
        self.generate_ids = log and self.id_column is None

    def read_types(self) -> dict[str, pa.DataType]:
        """Arrow types a CSV reader should give the columns: float64 features, text
        categories and ids (an id "007" stays "007")."""
        types: dict[str, pa.DataType] = {
            f: pa.string() if f in self.predictor.categorical else pa.float64()
            for f in self.predictor.features
        }
        if self.id_column is not None:
            types[self.id_column] = pa.string()
        return types

    def score(self, chunk: pa.RecordBatch | pa.Table) -> Scored:
        """Validate and predict ``chunk``; raises BadCell naming the first bad row. Nothing
        is logged here: the caller logs ``Scored.batch`` once the whole chunk passed."""
        started = time.perf_counter()
        n = chunk.num_rows
        x = self.matrix(chunk)
        batch_id = new_batch_id()
        ids: list[str] = []
        client = self.id_column is not None
        if self.log:
            if self.id_column is not None:
                ids = self._client_ids(chunk.column(self.id_column))
            else:
                ids = generated_ids(batch_id, n)
        p = self.predictor
        preds, proba = p.predict(x)
        bad = p.unanswerable(preds, proba)
        if bad is not None:
            raise BadCell(
                bad.record,
                PREDICTION,
                "the model's output is not finite for this row (values far outside the "
                "training data?)",
            )
        out: dict[str, Any] = {}
        if self.id_column is not None:
            out[self.id_column] = chunk.column(self.id_column)
        elif self.generate_ids:
            out["id"] = pa.array(ids, pa.string())
        for k in self.keep:
            out[k] = chunk.column(k)
        out[PREDICTION] = preds.astype(np.int64) if p.task == "classification" else preds
        if proba is not None:
            for name, values in zip(
                self._probability_names(), self._probabilities(proba), strict=True
            ):
                out[name] = values
        if not self.log:
            return Scored(pa.table(out), None)
        latency_ms = (time.perf_counter() - started) * 1000
        record = PredictionBatch(
            batch_id,
            ids,
            client,
            dt.datetime.now(dt.UTC),
            p.name,
            p.version,
            ENDPOINT,
            p.features,
            x,
            preds,
            latency_ms,
            proba,
            p.classes,
        )
        return Scored(pa.table(out), record)

    # --- the feature matrix --------------------------------------------------------------------

    def matrix(self, chunk: pa.RecordBatch | pa.Table) -> np.ndarray:
        """(n, n_features) in the model's order: float64, or object (numbers as float,
        categories as str) for a model with categorical features. Raises BadCell."""
        p = self.predictor
        n = chunk.num_rows
        if not p.categorical:
            # column-major: each Arrow column lands in one contiguous copy
            x = np.empty((n, len(p.features)), dtype=np.float64, order="F")
            for j, f in enumerate(p.features):
                x[:, j] = _numbers(chunk.column(f), f)
            _check_bounds(x, p.features)
            return x
        x = np.empty((n, len(p.features)), dtype=object)
        numeric = [f for f in p.features if f not in p.categorical]
        for j, f in enumerate(p.features):
            if f in p.categorical:
                x[:, j] = _categories(chunk.column(f), f)
        if numeric:
            values = np.column_stack([_numbers(chunk.column(f), f) for f in numeric])
            _check_bounds(values, numeric)
            for k, f in enumerate(numeric):
                x[:, p.features.index(f)] = values[:, k].tolist()
        return x

    def _client_ids(self, col: pa.ChunkedArray | pa.Array) -> list[str]:
        name = self.id_column or "id"
        col = _nulls_refused(col, name, "an id")
        if pa.types.is_floating(col.type):
            col = _integral(col, name, "an id")
        if pa.types.is_integer(col.type):
            big = pc.greater(pc.abs(col), MAX_INT_ID)
            if pc.any(big).as_py():
                i = _first(big)
                raise BadCell(
                    i, name, f"id {col[i].as_py()} is beyond ±{MAX_INT_ID}: store it as text"
                )
            col = pc.cast(col, pa.string())
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            raise BadCell(None, name, f"ids must be text or integers, the column is {col.type}")
        checks = (
            (pc.equal(pc.utf8_length(col), 0), "an empty id"),
            (
                pc.greater(pc.utf8_length(col), MAX_ID_CHARS),
                f"an id over {MAX_ID_CHARS} characters",
            ),
            (pc.match_substring_regex(col, _CONTROL), "an id with control characters"),
        )
        for bad, what in checks:
            if pc.any(bad).as_py():
                i = _first(bad)
                raise BadCell(i, name, f"{what}: {shown(col[i].as_py())}")
        ids: list[str] = col.to_pylist()
        if pc.count_distinct(col).as_py() != len(ids):
            seen: set[str] = set()
            for i, v in enumerate(ids):
                if v in seen:
                    raise BadCell(i, name, f"duplicate id {v!r} (ids must be unique)")
                seen.add(v)
        return ids

    # --- probabilities ---------------------------------------------------------------------------

    def _probability_names(self) -> tuple[str, ...]:
        classes = self.predictor.classes
        if classes is None:
            return ()
        if len(classes) == 2:
            return ("probability",)
        return tuple(f"probability_{c}" for c in classes)

    def _probabilities(self, proba: np.ndarray) -> list[np.ndarray]:
        if proba.shape[1] == 2:
            return [proba[:, 1]]
        return [proba[:, j] for j in range(proba.shape[1])]


def frame_table(frame: Any) -> pa.Table:
    """A pandas DataFrame as an Arrow table, column by column, so that a column Arrow cannot
    type (numbers mixed with text, say) is refused naming its first odd row: BadCell."""
    arrays, names = [], []
    for j, name in enumerate(frame.columns):
        series = frame.iloc[:, j]
        try:
            arrays.append(pa.Array.from_pandas(series))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            values = series.tolist()
            kinds = [type(v) for v in values]
            first = kinds[0]
            i = next((k for k, t in enumerate(kinds) if t is not first), 0)
            raise BadCell(
                i,
                str(name),
                f"mixes {first.__name__} and {kinds[i].__name__} values: "
                f"{shown(values[i])} ({exc})",
            ) from exc
        names.append(str(name))
    return pa.Table.from_arrays(arrays, names=names)


def _first(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.index(mask, True).as_py())


def _nulls_refused(col: Any, name: str, what: str) -> Any:
    if col.null_count:
        i = _first(pc.is_null(col))
        raise BadCell(i, name, f"no value (empty, null or NaN), expected {what}")
    return col


def _integral(col: Any, name: str, what: str) -> Any:
    """A float column of whole numbers (Parquet's way with NULL-able integers) as int64."""
    arr = np.asarray(col.to_numpy(), dtype=np.float64)
    frac = ~np.isfinite(arr) | (np.mod(arr, 1) != 0) | (np.abs(arr) > MAX_INT_ID)
    if frac.any():
        i = int(np.argmax(frac))
        raise BadCell(i, name, f"{what} must be text or a whole number, got {shown(float(arr[i]))}")
    return pa.array(arr.astype(np.int64))


def _numbers(col: Any, name: str) -> np.ndarray:
    """A numeric feature as float64; booleans, dates and text refused (a CSV reader is told
    to read these columns as numbers, see ``read_types``)."""
    col = _nulls_refused(col, name, "a number")
    t = col.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        if not pa.types.is_float64(t):
            col = pc.cast(col, pa.float64())
    elif pa.types.is_string(t) or pa.types.is_large_string(t):  # as the server refuses "7.4"
        raise BadCell(0, name, f"must be a number, got {shown(col[0].as_py())} (a text column)")
    else:
        raise BadCell(None, name, f"must hold numbers, the column is {t}")
    return np.asarray(col.to_numpy(), dtype=np.float64)


def _check_bounds(x: np.ndarray, names: Sequence[str]) -> None:
    """NaN, infinities and |x| > MAX_ABS_VALUE refused, as on every serving route."""
    if x.size == 0 or (x.min() >= -MAX_ABS_VALUE and x.max() <= MAX_ABS_VALUE):
        return  # two reductions, no temporary; a NaN makes both comparisons False
    ok = np.abs(x) <= MAX_ABS_VALUE
    i, k = (int(v) for v in np.argwhere(~ok)[0])
    value = float(x[i, k])
    if np.isfinite(value):
        problem = f"must be between -{MAX_ABS_VALUE:g} and {MAX_ABS_VALUE:g}, got {value:g}"
    else:
        problem = f"must be a finite number, got {value!r}"
    raise BadCell(i, names[k], problem)


def _categories(col: Any, name: str) -> np.ndarray:
    """A categorical feature as an object array of str: text as is, whole numbers as their
    digits (a location id 132 is the category "132", as on the serving routes)."""
    col = _nulls_refused(col, name, "a category")
    what = "a category"
    if pa.types.is_floating(col.type):
        col = _integral(col, name, what)
    if pa.types.is_integer(col.type):
        big = pc.greater(pc.abs(col), MAX_INT_ID)
        if pc.any(big).as_py():
            i = _first(big)
            raise BadCell(i, name, f"{what} as an integer must be within ±{MAX_INT_ID}")
        col = pc.cast(col, pa.string())
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise BadCell(None, name, f"{what} must be text or an integer, the column is {col.type}")
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)
