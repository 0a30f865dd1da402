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
from mlrig.serving.api_examples import invocation_examples, predict_examples
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


_REGEX_SPECIAL = frozenset("\\^$.|?*+()[]{}/")


def _literal(text: str) -> str:
    # only syntax characters are escaped: ECMA-262's unicode mode refuses other escapes
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in text)


def _glob(pattern: str) -> str:
    """An fnmatch pattern (``*``, ``?``, ``[...]``, ``[!...]``) as an ECMA-262 regex body."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        end = pattern.find("]", i + 2) if c == "[" else -1
        if c == "*":
            out.append("[\\s\\S]*")
        elif c == "?":
            out.append("[\\s\\S]")
        elif end != -1:
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            inner = "".join("\\" + ch if ch in "\\[]^" else ch for ch in body)
            out.append(f"[{'^' if negate else ''}{inner}]")
            i = end
        else:
            out.append(_literal(c))
        i += 1
    return "".join(out)


def id_regex(patterns: Sequence[str], features: Sequence[str]) -> str:
    """The JSON Schema ``pattern`` of the names read as a record id (serving.id_fields, as
    mlrig.predictions.ids.id_field reads them): one of ``patterns``, never a feature."""
    import fnmatch

    if not patterns:
        return "^(?!)$"  # matches no name
    taken = [f for f in features if any(fnmatch.fnmatchcase(f, p) for p in patterns)]
    exclude = f"(?!(?:{'|'.join(map(_literal, taken))})$)" if taken else ""
    return f"^{exclude}(?:{'|'.join(map(_glob, patterns))})$"


def _value(name: str, categorical: Sequence[str]) -> dict[str, Any]:
    return _category() if name in categorical else _number()


def _record(
    features: Sequence[str], categorical: Sequence[str], id_names: str | None
) -> dict[str, Any]:
    """One record; with ``id_names`` (a regex) it may also carry one id under such a name."""
    out: dict[str, Any] = {
        "type": "object",
        "properties": {f: _value(f, categorical) for f in features},
        "required": list(features),
        "additionalProperties": False,
    }
    if id_names is not None:
        out["patternProperties"] = {id_names: _id()}
        out["maxProperties"] = len(features) + 1
    return out


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


def _nested(
    features: Sequence[str], categorical: Sequence[str], id_names: str
) -> list[dict[str, Any]]:
    """One record nested under any key that is neither a feature nor an id name: alone (the
    record may carry its id), or beside exactly one id field (the zoomcamp's request)."""
    no_features = {f: False for f in features}
    alone = {
        "type": "object",
        "description": "One record nested under one key, e.g. {ride: {...}}.",
        "properties": no_features,
        "propertyNames": {"not": {"pattern": id_names}},
        "additionalProperties": _record(features, categorical, id_names),
        "minProperties": 1,
        "maxProperties": 1,
    }
    beside = {
        "type": "object",
        "description": "One record nested under one key beside its id, e.g. "
        "{ride_id: ..., ride: {...}}.",
        "properties": no_features,
        "patternProperties": {id_names: _id()},
        "additionalProperties": _record(features, categorical, None),
        "minProperties": 2,
        "maxProperties": 2,
        # exactly one of the two names is an id name
        "not": {
            "anyOf": [
                {"propertyNames": {"pattern": id_names}},
                {"propertyNames": {"not": {"pattern": id_names}}},
            ]
        },
    }
    return [alone, beside]


def _id_columns(
    features: Sequence[str], categorical: Sequence[str], id_names: str, max_rows: int
) -> dict[str, Any]:
    n = len(features)
    return {
        "type": "object",
        "description": "Column-oriented, as DataFrame.to_dict('list') writes it: "
        "{feature: [values]} and optionally one id column, every list equally long.",
        "properties": {f: _batch(_value(f, categorical), max_rows) for f in features},
        "patternProperties": {id_names: _batch(_id(), max_rows)},
        "required": list(features),
        "additionalProperties": False,
        "maxProperties": n + 1,
    }


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
        records = _batch(_record(features, categorical, None), max_rows)
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
            "application/json": {
                "schema": body,
                "examples": invocation_examples(model) if model else {},
            },
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
        id_names = id_regex(model.id_fields if model else (), features)
        record = _record(features, categorical, id_names)
        records = _batch(record, max_rows)
        content = {
            "application/json": {
                "schema": {
                    "description": (
                        "One record, a list of them, {records: [...]}, one record nested under "
                        "any key beside its id, or columns {feature: [values]}. An id goes "
                        f"under a name matching {id_names} (serving.id_fields) that is no "
                        "feature; one id name per request, ids unique within it, columns "
                        "equally long."
                    ),
                    "anyOf": [
                        record,
                        records,
                        _only("records", records),
                        *_nested(features, categorical, id_names),
                        _id_columns(features, categorical, id_names, max_rows),
                    ],
                },
                "examples": predict_examples(model) if model else {},
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
