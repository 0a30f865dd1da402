"""OpenAPI documentation of the served model's real inputs and answers, built once from its
signature when the app is made.

The hot routes parse raw bytes themselves (predictor.py, csv_body.py); this module says what
they accept, exactly: a body valid against these schemas is answered 200, and the refusals are
documented with their bodies. Two rules JSON Schema cannot state are in the descriptions:
ids unique within a request, and equally long columns in the column-oriented form. The
OpenAPI fuzz test (tests/integration/test_openapi_fuzz.py) holds the two to each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from mlrig.predictions.ids import MAX_ID_CHARS, MAX_INT_ID
from mlrig.serving import v2
from mlrig.serving.predictor import MAX_ABS_VALUE, Predictor
from mlrig.serving.v2_request import DATATYPES


class Feedback(BaseModel):
    # the client-id rule of mlrig.predictions.ids, as the server checks it
    id: (
        Annotated[
            str,
            StringConstraints(
                min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$"
            ),
        ]
        | Annotated[int, Field(ge=-MAX_INT_ID, le=MAX_INT_ID)]
    ) = Field(description="The id returned by /predict (ids are per model).")
    actual: float = Field(description="The observed ground truth.")


def _number() -> dict[str, Any]:
    return {"type": "number", "minimum": -MAX_ABS_VALUE, "maximum": MAX_ABS_VALUE}


def _category() -> dict[str, Any]:
    integer = {"type": "integer", "minimum": -MAX_INT_ID, "maximum": MAX_INT_ID}
    return {"anyOf": [{"type": "string"}, integer]}


def _id() -> dict[str, Any]:
    return {
        "description": (
            f"Optional prediction id: a string of 1–{MAX_ID_CHARS} characters without control "
            "characters, not of the generated form <32 hex digits>-<row>, or an integer. "
            "Unique within the request. Without one the server generates it."
        ),
        "anyOf": [
            {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_ID_CHARS,
                "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
                "not": {"pattern": "^[0-9a-f]{32}-[0-9]+$"},
            },
            {"type": "integer", "minimum": -MAX_INT_ID, "maximum": MAX_INT_ID},
            {"type": "null"},
        ],
    }


def _value(name: str, categorical: Sequence[str]) -> dict[str, Any]:
    return _category() if name in categorical else _number()


def _record(features: Sequence[str], categorical: Sequence[str], with_id: bool) -> dict[str, Any]:
    props = {f: _value(f, categorical) for f in features}
    if with_id:
        props = {"id": _id(), **props}
    return {
        "type": "object",
        "properties": props,
        "required": list(features),
        "additionalProperties": False,
    }


def _row(features: Sequence[str], categorical: Sequence[str]) -> dict[str, Any]:
    """One row in feature order."""
    n = len(features)
    return {
        "type": "array",
        "prefixItems": [_value(f, categorical) for f in features],
        "items": False,
        "minItems": n,
        "maxItems": n,
    }


def _batch(item: dict[str, Any], max_rows: int) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": 1, "maxItems": max_rows}


def _split(features: Sequence[str], categorical: Sequence[str], max_rows: int) -> dict[str, Any]:
    n = len(features)
    # With columns in any order, a row's value types cannot follow the column names here.
    cell = {"anyOf": [_number(), _category()]} if categorical else _number()
    return {
        "type": "object",
        "description": (
            "pandas' split orientation: 'columns' names every feature once, in any order "
            "(default: the model's order); each row of 'data' has one value per column; "
            "'index' is accepted and ignored."
        ),
        "properties": {
            "columns": {
                "type": "array",
                "items": {"type": "string", "enum": list(features)},
                "uniqueItems": True,
                "minItems": n,
                "maxItems": n,
            },
            "data": _batch(
                {"type": "array", "items": cell, "minItems": n, "maxItems": n}, max_rows
            ),
            "index": {"type": "array"},
        },
        "required": ["data"],
        "additionalProperties": False,
    }


def _columns(features: Sequence[str], categorical: Sequence[str], max_rows: int) -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Column-oriented: {feature: [values]}, every list equally long.",
        "properties": {f: _batch(_value(f, categorical), max_rows) for f in features},
        "required": list(features),
        "additionalProperties": False,
    }


def _only(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: schema},
        "required": [key],
        "additionalProperties": False,
    }


def _error(*extra: str) -> dict[str, Any]:
    props: dict[str, Any] = {
        "error": {"type": "string", "description": "What is wrong, naming record and field."},
        "record": {"type": "integer", "description": "Index of the offending record."},
        "field": {"type": "string", "description": "The offending field."},
    }
    props.update({name: {"type": "string"} for name in extra})
    return {"type": "object", "properties": props, "required": ["error"]}


def _responses(ok: dict[str, Any], error: dict[str, Any], csv: bool) -> dict[str, Any]:
    def refusal(text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"schema": error}}}

    out = {
        "200": ok,
        "400": refusal("Unreadable body: empty, not JSON/CSV, an unknown format, no records."),
        "401": refusal("A predict token is set and the request has no bearer token."),
        "403": refusal("Wrong bearer token."),
        "413": refusal("More records than the batch limit, or a body over the size limit."),
        "422": refusal("A record is invalid: the message names the record and the field."),
        "503": refusal("No model loaded yet, or the prediction log is unavailable."),
    }
    if csv:
        out["415"] = refusal("Content type other than application/json or text/csv.")
    return out


def predict_schema(
    model: Predictor | None, max_rows: int, invocations: bool = False
) -> dict[str, Any]:
    """``openapi_extra`` for /predict (``invocations=False``) or /invocations, describing
    ``model``'s inputs and answers (no model loaded yet: no features)."""
    features = model.features if model else ()
    categorical = model.categorical if model else ()
    task = model.task if model else None
    classes = model.classes if model else None
    max_rows = model.max_rows if model else max_rows
    label = {"type": "integer"} if task == "classification" else {"type": "number"}
    binary = classes is not None and len(classes) == 2
    proba: dict[str, Any] = (
        {"type": "number"}
        if binary
        else {"type": "object", "additionalProperties": {"type": "number"}}
    )
    if invocations:
        rows = _batch(_row(features, categorical), max_rows)
        records = _batch(_record(features, categorical, with_id=False), max_rows)
        listed = {"anyOf": [records, rows, _columns(features, categorical, max_rows)]}
        body = {
            "description": "MLflow scoring protocol: exactly one of these keys.",
            "oneOf": [
                _only("dataframe_split", _split(features, categorical, max_rows)),
                _only("dataframe_records", records),
                _only("instances", listed),
                _only("inputs", listed),
                {  # MLflow 1.x: the split object itself
                    **_split(features, categorical, max_rows),
                    "required": ["columns", "data"],
                },
            ],
        }
        content = {
            "application/json": {"schema": body},
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": (
                        "A header row naming every feature once, then one row per record with "
                        "as many fields as the header; numbers finite; UTF-8."
                    ),
                }
            },
        }
        ok_props: dict[str, Any] = {"predictions": {"type": "array", "items": label}}
        if task == "classification":
            ok_props["probabilities"] = {"type": "array", "items": {"type": "array"}}
            ok_props["classes"] = {"type": "array", "items": {"type": "string"}}
        ok = {
            "description": "One prediction per record, in order.",
            "headers": {
                "X-Model-Version": {
                    "description": "The model version that answered.",
                    "schema": {"type": "string"},
                }
            },
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": ok_props,
                        "required": list(ok_props),
                    }
                }
            },
        }
        error = _error("error_code", "message")
    else:
        record = _record(features, categorical, with_id=True)
        records = _batch(record, max_rows)
        content = {
            "application/json": {
                "schema": {
                    "description": (
                        "One record, a list of them, or {records: [...]}; ids unique within "
                        "the request."
                    ),
                    "anyOf": [record, records, _only("records", records)],
                }
            }
        }
        item: dict[str, Any] = {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "prediction": label,
                "model": {"type": "string"},
                "version": {"type": "string"},
            },
            "required": ["id", "prediction", "model", "version"],
        }
        if task == "classification":
            item["properties"]["probability" if binary else "probabilities"] = proba
            item["required"].append("probability" if binary else "probabilities")
        ok = {
            "description": "One prediction per record, with its id (logged).",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "model": {"type": "string"},
                            "version": {"type": "string"},
                            "predictions": {"type": "array", "items": item},
                        },
                        "required": ["model", "version", "predictions"],
                    }
                }
            },
        }
        error = _error()
    return {
        "requestBody": {"required": True, "content": content},
        "responses": _responses(ok, error, csv=invocations),
    }


def feedback_schema() -> dict[str, Any]:
    item = Feedback.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"anyOf": [item, {"type": "array", "items": item}]}}
            },
        }
    }


def _v2_tensor(with_data: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 2},
        "datatype": {"type": "string", "enum": sorted(DATATYPES)},
        "parameters": {"type": "object"},
    }
    if with_data:
        props["data"] = {"type": "array", "description": "Flat row-major, or nested."}
    return {"type": "object", "properties": props, "required": ["name", "shape", "datatype"]}


def v2_infer_schema(model: Predictor | None) -> dict[str, Any]:
    """``openapi_extra`` for the V2 infer routes, with an example body for ``model``."""
    error = {
        "type": "object",
        "properties": {"error": {"type": "string", "description": "Names input, record, field."}},
        "required": ["error"],
    }
    body = {
        "type": "object",
        "description": (
            "Open Inference Protocol infer request: one input per feature (shape [n] or [n, 1], "
            "BYTES for categorical features), or one [n, n_features] tensor in the model's "
            "feature order; an extra input named 'id' or '*_id' carries per-row ids."
        ),
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": _v2_tensor(True), "minItems": 1},
            "outputs": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
        },
        "required": ["inputs"],
        "additionalProperties": False,
    }
    answer = {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _v2_tensor(True)},
        },
        "required": ["model_name", "model_version", "outputs"],
    }

    def refusal(text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"schema": error}}}

    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": body, "example": v2.example_request(model)},
                "application/octet-stream": {
                    "schema": {
                        "type": "string",
                        "format": "binary",
                        "description": "Triton's binary tensor data: the JSON request "
                        "(Inference-Header-Content-Length bytes), then each input's raw data.",
                    }
                },
            },
        },
        "responses": {
            "200": {
                "description": "Outputs predict, predict_proba (classifiers) and id (logged).",
                "content": {"application/json": {"schema": answer}},
            },
            "400": refusal("Unreadable body or unknown output."),
            "401": refusal("A predict token is set and the request has no bearer token."),
            "403": refusal("Wrong bearer token."),
            "404": refusal("The model (or version) is not the one served."),
            "413": refusal("More rows than the batch limit, or a body over the size limit."),
            "422": refusal("A bad input: the message names the input, record and field."),
            "503": refusal("No model loaded yet, or the prediction log is unavailable."),
        },
    }
