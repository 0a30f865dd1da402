"""Framework-free prediction: parse request bodies against the model's feature contract,
build one float64 NumPy array, call the fitted estimator.

The contract (feature names and order) is read once when the model loads, so the hot path
does no pandas and no pyfunc schema enforcement: plain dict/list checks and one ``np.asarray``.
Every refusal is a RequestError naming the record index and the field. The body readers live
beside it (json_body.py, csv_body.py); every batch, whatever its format, passes one value check
(finite, |x| <= MAX_ABS_VALUE) before it can reach the model or the log.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlrig.errors import ModelRefusedError
from mlrig.predictions.ids import DEFAULT_ID_FIELDS, MAX_INT_ID
from mlrig.predictions.records import (
    generated_id,
    generated_ids,
    new_batch_id,
)
from mlrig.serving.bad_request import (
    RequestError,
    category_msg,
    finite_msg,
    shown,
    type_msg,
)
from mlrig.serving.body_shapes import (
    Columns,
    IdNames,
    column_ids,
    predict_shape,
    record_ids,
)
from mlrig.serving.csv_body import csv_rows, read_csv
from mlrig.serving.direct_model import Method, direct_method
from mlrig.serving.json_body import (
    FORMAT_HELP,
    loads,
    may_hold_bool,
    no_other_keys,
    numeric,
)
from mlrig.tracking.loading import LoadedModel, accept_arrays

__all__ = ["Batch", "Predictor", "RequestError"]

_NUMBER = (int, float)
# Largest feature magnitude accepted: far beyond any measurement, far enough below float64's
# 1.8e308 that a model's sums and products of a few such values stay finite.
MAX_ABS_VALUE = 1e100


@dataclass(frozen=True)
class Batch:
    """Validated rows: one id per row (the client's, or ``<batch_id>-<row>``) and an
    (n, n_features) float64 array."""

    batch_id: str
    ids: list[str]
    client_ids: bool
    x: np.ndarray
    id_name: str | None = None  # the field the client's ids came under (e.g. ride_id)


class Predictor:
    """One loaded model version and its input contract.

    All-numeric models take one float64 matrix. Models with categorical features take an
    object matrix (numbers as float, categories as str) that their Pipeline encodes itself.
    """

    def __init__(
        self, model: LoadedModel, max_rows: int, id_fields: Sequence[str] = DEFAULT_ID_FIELDS
    ) -> None:
        if not model.features:  # nothing to check a request against: refuse, do not guess
            raise ModelRefusedError(
                f"model {model.name!r} version {model.version}: logged without an input "
                "signature, so serving cannot check requests against its features (log it "
                "with a signature)"
            )
        self.name = model.name
        self.version = model.version
        self.loaded_at = time.time()
        self.features = model.features
        self.task = model.task
        self.max_rows = max_rows
        self.id_fields = tuple(id_fields)  # names read as the record id (predictions.ids)
        self._id_names = IdNames(self.features, self.id_fields)
        self.example = model.example  # the logged input example: the API docs' example values
        self._index = {f: i for i, f in enumerate(self.features)}
        self.categorical = model.categorical
        self._categorical = frozenset(model.categorical)
        self._estimator = model.estimator
        classes = (
            getattr(model.estimator, "classes_", None) if self.task == "classification" else None
        )
        # Labels as float64 (what the log stores) and as text (the logged class names).
        self._class_values = None if classes is None else np.asarray(classes, dtype=np.float64)
        self.classes: tuple[str, ...] | None = (
            None if classes is None else tuple(str(c) for c in np.asarray(classes).tolist())
        )
        # Inputs are validated here, positionally, against the signature: sklearn's own
        # feature-name check would warn on every NumPy call.
        self._direct: Method | None = None
        if list(getattr(self._estimator, "feature_names_in_", self.features)) == list(
            self.features
        ):
            accept_arrays(self._estimator)
            if not self._categorical:  # the Pipeline's arithmetic without its per-call checks
                method = "predict" if self._class_values is None else "predict_proba"
                self._direct = direct_method(self._estimator, method, len(self.features))

    def self_check(self, example: Any) -> None:
        """Predict the model's own input example (a row of zeros when it has none) once, so a
        version whose estimator does not fit its signature is refused before it serves
        instead of failing every request. Raises ModelRefusedError."""
        columns = getattr(example, "columns", ())
        has_example = example is not None and len(example) > 0
        what = "its own input example"
        try:
            if has_example and all(f in columns for f in self.features):
                rows = example[list(self.features)].head(5).to_dict("split")["data"]
                x = self._mixed_rows(rows, list(self.features))  # native values: checked here
                self.predict(x if self._categorical else x.astype(np.float64))
            elif not self._categorical:
                what = "a row of zeros"
                self.predict(np.zeros((1, len(self.features))))
            # else: categories unknown, nothing safe to try
        except Exception as exc:
            raise ModelRefusedError(
                f"model {self.name!r} version {self.version}: fails on {what} ({exc})"
            ) from exc

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(n,) float64 predictions, and for a classifier the (n, n_classes) probabilities its
        labels are the argmax of (one estimator call for both)."""
        import sklearn

        # Inputs are checked finite and bounded (_check_values); an output that overflows
        # anyway is refused per request by unanswerable(), so numpy's warning adds nothing.
        with sklearn.config_context(assume_finite=True), np.errstate(all="ignore"):
            if self._class_values is not None:
                predict_proba = self._direct or self._estimator.predict_proba
                proba = np.asarray(predict_proba(x), dtype=np.float64)
                return self._class_values[np.argmax(proba, axis=1)], proba
            predict = self._direct or self._estimator.predict
            return np.asarray(predict(x), dtype=np.float64).ravel(), None

    def unanswerable(self, preds: np.ndarray, proba: np.ndarray | None) -> RequestError | None:
        """A 422 when the model's output for these rows is not finite (finite but extreme
        inputs can overflow it): JSON would carry it as null, a classifier's argmax as class 0.
        Checked per request, before anything is logged."""
        bad = ~np.isfinite(preds)
        if proba is not None:
            bad |= ~np.isfinite(proba).all(axis=1)
        if not bad.any():
            return None
        i = int(np.argmax(bad))
        return RequestError(
            422,
            f"record {i}: the model's output is not finite for these inputs "
            "(values far outside the training data?)",
            i,
        )

    def answer_values(self, preds: np.ndarray) -> list[Any]:
        """Predictions as JSON values: class labels stay integers."""
        if self.task == "classification":
            return list(preds.astype(np.int64).tolist())
        return list(preds.tolist())

    def answer_probabilities(self, proba: np.ndarray) -> list[Any]:
        """Per record: the positive class's probability (binary), else {class: probability}."""
        if self.classes is not None and len(self.classes) == 2:
            return list(proba[:, 1].tolist())
        classes = self.classes or ()
        return [dict(zip(classes, row, strict=True)) for row in proba.tolist()]

    # --- /predict ------------------------------------------------------------------------------

    def parse_predict(self, body: bytes) -> Batch:
        """Any accepted /predict shape (serving/body_shapes.py): records, a list of them,
        ``{"records": [...]}``, one record nested beside its id, or columns; the client's ids
        are kept, with the field they came under."""
        shaped = predict_shape(loads(body), self._index, self._id_names)
        if isinstance(shaped, Columns):
            return self._predict_columns(shaped, may_hold_bool(body))
        records = shaped.rows
        self._check_size(len(records))
        found = record_ids(records, self._index, self._id_names, shaped.outer)
        allow = {found.name} if found.in_rows and found.name is not None else set()
        x = self._records_matrix(records, body, allow)
        self._check_values(x)
        return self._with_ids(found.ids, found.name, x)

    def _predict_columns(self, shaped: Columns, exact: bool) -> Batch:
        """Column-oriented /predict: one array per feature, transposed (no per-row pass when
        every value is a number); the first bad value is named by record and field."""
        self._check_size(shaped.n)
        ids = None
        if shaped.id_values is not None and shaped.id_name is not None:
            ids = column_ids(shaped.id_values, shaped.id_name)
        columns = [shaped.columns[f] for f in self.features]
        if self._categorical:
            rows = [list(r) for r in zip(*columns, strict=True)]
            x = self._mixed_rows(rows, list(self.features))
        else:
            arr = None if exact else numeric(columns, shaped.n)
            if arr is None:
                for f, values in zip(self.features, columns, strict=True):
                    for i, value in enumerate(values):
                        if type(value) not in _NUMBER:
                            raise RequestError(422, type_msg(i, f, value), i, f)
                arr = np.array(columns, dtype=np.float64)
            x = np.ascontiguousarray(arr.T)
        self._check_values(x)
        return self._with_ids(ids, shaped.id_name, x)

    def _with_ids(self, ids: list[str | None] | None, name: str | None, x: np.ndarray) -> Batch:
        batch_id = new_batch_id()
        if ids is None:
            return Batch(batch_id, generated_ids(batch_id, len(x)), False, x, name)
        if None not in ids:  # every record sent its id
            return Batch(batch_id, ids, True, x, name)  # type: ignore[arg-type]
        given = [generated_id(batch_id, i) if rid is None else rid for i, rid in enumerate(ids)]
        return Batch(batch_id, given, any(rid is not None for rid in ids), x, name)

    # --- /invocations (MLflow scoring protocol) ------------------------------------------------

    def parse_invocation(self, body: bytes, content_type: str) -> Batch:
        """MLflow's formats: dataframe_split, dataframe_records, instances, inputs, or text/csv."""
        kind = content_type.split(";", 1)[0].strip().lower()
        if kind == "text/csv":
            return self._from_csv(body)
        if kind not in ("application/json", ""):
            raise RequestError(
                415, f"content type {kind!r} not supported: use application/json or text/csv"
            )
        data = loads(body)
        if not isinstance(data, dict):
            raise RequestError(400, FORMAT_HELP)
        exact = may_hold_bool(body)
        keys = set(data) & {"dataframe_split", "dataframe_records", "instances", "inputs"}
        if len(keys) != 1:
            if {"columns", "data"} <= set(data):  # the MLflow 1.x pandas-split body of the seeds
                return self._from_split(data, exact)
            raise RequestError(400, FORMAT_HELP)
        key = keys.pop()
        no_other_keys(data, {key}, f"a {key!r} body")
        payload = data[key]
        if key == "dataframe_split":
            if not isinstance(payload, dict):
                raise RequestError(
                    400, "dataframe_split must be an object with 'columns' and 'data'"
                )
            return self._from_split(payload, exact)
        if isinstance(payload, dict):  # inputs/instances as {column: [values]}
            return self._from_columns(payload, exact)
        if not isinstance(payload, list):
            raise RequestError(400, f"{key} must be a list of records or rows")
        if payload and all(isinstance(r, list) for r in payload):
            return self._from_rows(payload, list(self.features), exact)
        self._check_size(len(payload))
        for i, rec in enumerate(payload):
            if not isinstance(rec, dict):
                raise RequestError(422, f"record {i}: expected a JSON object of features", i)
        return self._new_ids(self._records_matrix(payload, body, set()))

    def _from_split(self, payload: dict[str, Any], exact: bool) -> Batch:
        no_other_keys(payload, {"columns", "data", "index"}, "dataframe_split")
        columns = payload.get("columns", list(self.features))
        rows = payload.get("data")
        if not isinstance(columns, list) or not isinstance(rows, list):
            raise RequestError(
                400, "dataframe_split needs 'columns' (list) and 'data' (list of rows)"
            )
        if not isinstance(payload.get("index", []), list):
            raise RequestError(400, "dataframe_split 'index' must be a list (it is ignored)")
        for c in columns:
            if not isinstance(c, str):  # str() of a deeply nested value can itself fail
                raise RequestError(422, f"column names must be strings, got {shown(c)}")
        return self._from_rows(rows, columns, exact)

    def _from_rows(self, rows: list[Any], columns: list[str], exact: bool) -> Batch:
        """``exact`` forces the per-value type check (the body may hold JSON booleans, which
        NumPy would silently turn into 0/1); otherwise NumPy's own dtype inference decides and
        the per-value walk only runs to name the offending field."""
        self._check_size(len(rows))
        unknown = [c for c in columns if c not in self._index]
        if unknown:
            raise RequestError(
                422,
                f"unknown field {unknown[0]!r} (expected {list(self.features)})",
                None,
                unknown[0],
            )
        missing = [f for f in self.features if f not in columns]
        if missing:
            raise RequestError(422, f"missing feature {missing[0]!r}", None, missing[0])
        if len(set(columns)) != len(columns):
            raise RequestError(422, "duplicate column names")
        if self._categorical:
            return self._new_ids(self._mixed_rows(rows, columns))
        x = None if exact else numeric(rows, len(columns))
        if x is None:
            for i, row in enumerate(rows):
                if not isinstance(row, list) or len(row) != len(columns):
                    raise RequestError(
                        422, f"record {i}: expected a list of {len(columns)} values", i
                    )
            for i, row in enumerate(rows):
                for j, value in enumerate(row):
                    if type(value) not in _NUMBER:
                        raise RequestError(422, type_msg(i, columns[j], value), i, columns[j])
            x = np.array(rows, dtype=np.float64)
        order = [columns.index(f) for f in self.features]
        return self._new_ids(x if order == list(range(len(order))) else x[:, order])

    def _from_columns(self, payload: dict[str, Any], exact: bool) -> Batch:
        columns = list(payload)
        values = [payload[c] for c in columns]
        if not all(isinstance(v, list) for v in values) or len({len(v) for v in values}) > 1:
            raise RequestError(400, "column-oriented inputs need equally long lists per column")
        rows = [list(r) for r in zip(*values, strict=True)] if values else []
        return self._from_rows(rows, columns, exact)

    def _from_csv(self, body: bytes) -> Batch:
        header, rows = read_csv(body)
        if not rows:
            raise RequestError(400, "no records in the text/csv body (only a header row)")
        return self._from_rows(csv_rows(header, rows, self._categorical), header, exact=False)

    # --- shared ---------------------------------------------------------------------------------

    def _records_matrix(
        self, records: list[dict[str, Any]], body: bytes, allow: set[str]
    ) -> np.ndarray:
        """Feature matrix of dict records (already checked to be dicts)."""
        feats = self.features
        if self._categorical:
            for i, rec in enumerate(records):
                self._check_fields(rec, i, allow)
            return self._mixed_rows([[r[f] for f in feats] for r in records], list(feats))
        if not may_hold_bool(body):
            width = len(feats)
            if all(len(r) == width + sum(1 for a in allow if a in r) for r in records):
                try:
                    x = numeric([[r[f] for f in feats] for r in records], width)
                except KeyError:
                    x = None
                if x is not None:
                    return x
        x = np.empty((len(records), len(feats)), dtype=np.float64)
        for i, rec in enumerate(records):
            x[i] = self._row_from_mapping(rec, i, allow)
        return x

    def _row_from_mapping(self, rec: dict[str, Any], i: int, allow: set[str]) -> list[float]:
        self._check_fields(rec, i, allow)
        row = []
        for f in self.features:
            value = rec[f]
            if type(value) not in _NUMBER:
                raise RequestError(422, type_msg(i, f, value), i, f)
            row.append(value)
        return row

    def _check_fields(self, rec: dict[str, Any], i: int, allow: set[str]) -> None:
        for f in self.features:
            if f not in rec:
                raise RequestError(422, f"record {i}: missing feature {f!r}", i, f)
        if len(rec) > len(self.features) + sum(1 for a in allow if a in rec):
            extra = next(k for k in rec if k not in self._index and k not in allow)
            raise RequestError(422, f"record {i}: unknown field {extra!r}", i, extra)

    def _mixed_rows(self, rows: list[Any], columns: list[str]) -> np.ndarray:
        """Object matrix in feature order: numbers as float, categories as str (a category
        may arrive as a JSON integer, e.g. a location id)."""
        width = len(columns)
        order = [columns.index(f) for f in self.features]
        x = np.empty((len(rows), len(self.features)), dtype=object)
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != width:
                raise RequestError(422, f"record {i}: expected a list of {width} values", i)
            for j, src in enumerate(order):
                name, value = self.features[j], row[src]
                kind = type(value)
                if name in self._categorical:
                    if kind is float and value.is_integer() and abs(value) <= MAX_INT_ID:
                        value, kind = int(value), int  # JSON's 132.0 is the integer 132
                    if kind is not str and (kind is not int or abs(value) > MAX_INT_ID):
                        raise RequestError(422, category_msg(i, name, value), i, name)
                    x[i, j] = value if kind is str else str(value)
                elif kind in _NUMBER:
                    x[i, j] = float(value)
                else:
                    raise RequestError(422, type_msg(i, name, value), i, name)
        return x

    def _check_size(self, n: int) -> None:
        if n == 0:
            raise RequestError(400, "no records in the request body")
        if n > self.max_rows:
            raise RequestError(413, f"batch of {n} records exceeds the limit of {self.max_rows}")

    def _check_values(self, x: np.ndarray) -> None:
        """Refuse NaN, infinities (JSON cannot carry them, text/csv can) and magnitudes over
        MAX_ABS_VALUE, which can overflow the model's arithmetic: it runs with
        ``assume_finite`` and would answer garbage, or class 0."""
        if x.dtype == object:
            cols = [j for j, f in enumerate(self.features) if f not in self._categorical]
            numeric = x[:, cols].astype(np.float64) if cols else np.zeros((len(x), 0))
        else:
            cols, numeric = list(range(x.shape[1])), x
        ok = np.abs(numeric) <= MAX_ABS_VALUE  # False for NaN too
        if ok.all():
            return
        i, k = (int(v) for v in np.argwhere(~ok)[0])
        name, value = self.features[cols[k]], float(numeric[i, k])
        message = (
            finite_msg(i, name, value)
            if not np.isfinite(value)
            else f"record {i}: field {name!r} must be between -{MAX_ABS_VALUE:g} and "
            f"{MAX_ABS_VALUE:g}, got {value:g}"
        )
        raise RequestError(422, message, i, name)

    def _new_ids(self, x: np.ndarray) -> Batch:
        self._check_values(x)
        batch_id = new_batch_id()
        return Batch(batch_id, generated_ids(batch_id, len(x)), False, x)

    # --- Open Inference Protocol (V2): tensors already read by serving/v2.py ----------------------

    def from_v2_columns(self, columns: dict[str, list[Any] | np.ndarray], exact: bool) -> Batch:
        """The columnar form: one flat sequence per feature (all equally long, checked)."""
        n = len(next(iter(columns.values())))
        self._check_size(n)
        if not self._categorical and not exact:
            try:  # one (n_features, n) array, transposed: no per-column NumPy calls
                arr = np.array([columns[f] for f in self.features])
            except (ValueError, TypeError):  # ragged nested values: the walk below names them
                arr = np.empty(0, dtype=object)
            if arr.ndim == 2 and arr.dtype.kind in "fiu":
                return self._new_ids(np.ascontiguousarray(arr.T, dtype=np.float64))
        as_lists = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in columns.items()}
        return self._from_columns(as_lists, exact=True)

    def from_v2_matrix(self, data: list[Any] | np.ndarray, n: int, exact: bool) -> Batch:
        """The 2-D form: ``n`` rows of flat row-major ``data`` in the model's feature order."""
        self._check_size(n)
        width = len(self.features)
        if not self._categorical and not exact:
            try:
                arr = np.asarray(data)
            except (ValueError, TypeError):  # ragged nested values: the walk below names them
                arr = np.empty(0, dtype=object)
            if arr.dtype.kind in "fiu" and arr.ndim == 1:
                return self._new_ids(arr.reshape(n, width).astype(np.float64, copy=False))
        flat = data.tolist() if isinstance(data, np.ndarray) else data
        rows = [flat[i * width : (i + 1) * width] for i in range(n)]
        return self._from_rows(rows, list(self.features), exact=True)
