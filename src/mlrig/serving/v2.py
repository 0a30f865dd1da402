"""The Open Inference Protocol (KServe V2) over REST: infer bodies in, the same Batch as the
other routes out; answers, metadata and error bodies. Pure functions, no I/O.

Spec: https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol.
Two request forms are read:
- columnar: one input tensor per feature, named like it, shape [n] or [n, 1];
- 2-D: one tensor of shape [n, n_features] (any name that is not a feature), values in the
  model's feature order, ``data`` flat row-major or nested.
An extra input named by the id rule (``id`` or ``*_id``, mlrig.predictions.ids.id_field) gives
per-row client ids, logged like /predict's; without one the ids are generated. Every answer
carries the logged ids as the output tensor ``id``. The request itself (JSON or Triton's
binary tensor data) is read by v2_request.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlrig.predictions.ids import id_field
from mlrig.serving.json_body import client_id
from mlrig.serving.predictor import Batch, Predictor, RequestError
from mlrig.serving.v2_request import INTEGER, NUMERIC, Tensor, read_request

PREDICT, PROBA, ID = "predict", "predict_proba", "id"
PLATFORM = "mlrig_sklearn"
EXTENSIONS = ("binary_tensor_data",)  # Triton's name for the binary input format read here


@dataclass(frozen=True)
class V2Batch(Batch):
    """A Batch plus what the answer needs: the request id and the outputs asked for."""

    request_id: str | None = None
    outputs: tuple[str, ...] | None = None


def infer_target(path: str) -> tuple[str, str | None] | None:
    """(model name, version or None) of ``/v2/models/{name}[/versions/{version}]/infer``."""
    parts = path.split("/")  # "", "v2", "models", name, ..., "infer"
    if len(parts) == 5 and parts[4] == "infer" and parts[3]:
        return parts[3], None
    if len(parts) == 7 and parts[4] == "versions" and parts[6] == "infer" and parts[3]:
        return parts[3], parts[5]
    return None


def output_names(p: Predictor) -> list[str]:
    return [PREDICT, PROBA, ID] if p.classes is not None else [PREDICT, ID]


def not_served(p: Predictor, name: str, version: str | None) -> RequestError | None:
    """404 unless ``name`` (and ``version``, if given) is what this server serves now."""
    if name != p.name:
        return RequestError(
            404, f"model {name!r} not found: this server serves {p.name!r} (version {p.version})"
        )
    if version is not None and version != p.version:
        return RequestError(
            404,
            f"model {name!r} version {version!r} is not served: "
            f"this server serves version {p.version}",
        )
    return None


def parse_infer(
    p: Predictor,
    body: bytes,
    name: str,
    version: str | None,
    header_length: str | None,
    id_patterns: Sequence[str],
) -> V2Batch:
    """An infer request for ``name``/``version`` as a validated batch. Raises RequestError
    (404 for a model not served, 400 for an unreadable body, 422 for a bad input)."""
    wrong = not_served(p, name, version)
    if wrong is not None:
        raise wrong
    request = read_request(body, header_length)
    if request.model_name not in (None, name):
        raise RequestError(
            400, f"'model_name' {request.model_name!r} in the body differs from the path's {name!r}"
        )
    if request.model_version is not None and (wrong := not_served(p, name, request.model_version)):
        raise wrong
    tensors, outputs, exact = request.tensors, request.outputs, request.exact
    known = output_names(p)
    for out in outputs or ():
        if out not in known:
            raise RequestError(400, f"unknown output {out!r}: model {p.name!r} has {known}")
    try:
        id_name = id_field([t.name for t in tensors], p.features, id_patterns)
    except ValueError as exc:
        raise RequestError(422, f"inputs: {exc}") from None
    id_tensor = next((t for t in tensors if t.name == id_name), None)
    inputs = [t for t in tensors if t.name != id_name]
    if len(inputs) == 1 and inputs[0].name not in p.features and len(inputs[0].shape) == 2:
        batch = _matrix(p, inputs[0], exact)
    else:
        batch = _columns(p, inputs, exact)
    if id_tensor is not None:
        batch = _with_ids(batch, id_tensor)
    return V2Batch(
        batch.batch_id, batch.ids, batch.client_ids, batch.x, request_id=request.id, outputs=outputs
    )


def _check_datatype(p: Predictor, t: Tensor, feature: str) -> None:
    categorical = feature in p.categorical
    ok = t.datatype in INTEGER or t.datatype == "BYTES" if categorical else t.datatype in NUMERIC
    if not ok:
        want = "BYTES (or an integer type)" if categorical else "FP64, FP32, INT64 or INT32"
        kind = "categorical" if categorical else "numeric"
        raise RequestError(
            422,
            f"input {t.name!r}: datatype {t.datatype}, but feature {feature!r} is {kind} "
            f"(send {want})",
            None,
            t.name,
        )


def _columns(p: Predictor, inputs: list[Tensor], exact: bool) -> Batch:
    """The columnar form: one tensor per feature, shape [n] or [n, 1]."""
    for t in inputs:
        if t.name not in p.features:
            raise RequestError(
                422,
                f"unknown input {t.name!r}: send one tensor per feature {list(p.features)}, "
                f"or one [n, {len(p.features)}] tensor in that order",
                None,
                t.name,
            )
        if len(t.shape) == 2 and t.shape[1] != 1:
            raise RequestError(
                422,
                f"input {t.name!r}: shape {list(t.shape)}, expected [n] or [n, 1]",
                None,
                t.name,
            )
        _check_datatype(p, t, t.name)
    names = {t.name for t in inputs}
    missing = [f for f in p.features if f not in names]
    if missing:
        raise RequestError(422, f"missing input {missing[0]!r} (a feature)", None, missing[0])
    rows = {t.shape[0] for t in inputs}
    if len(rows) > 1:
        raise RequestError(
            422, f"inputs have different numbers of rows: {sorted(rows)}", None, inputs[0].name
        )
    return p.from_v2_columns({t.name: t.data for t in inputs}, exact)


def _matrix(p: Predictor, t: Tensor, exact: bool) -> Batch:
    """The 2-D form: one [n, n_features] tensor in the model's feature order."""
    width = len(p.features)
    if t.shape[1] != width:
        raise RequestError(
            422,
            f"input {t.name!r}: shape {list(t.shape)}, expected [n, {width}] with the features "
            f"{list(p.features)} in that order (or one tensor per feature)",
            None,
            t.name,
        )
    if t.datatype not in NUMERIC and not (p.categorical and t.datatype == "BYTES"):
        raise RequestError(
            422, f"input {t.name!r}: datatype {t.datatype}, expected a numeric type", None, t.name
        )
    return p.from_v2_matrix(t.data, t.shape[0], exact)


def _with_ids(batch: Batch, t: Tensor) -> Batch:
    n = len(batch.ids)
    if (len(t.shape) == 2 and t.shape[1] != 1) or t.shape[0] != n:
        raise RequestError(
            422, f"input {t.name!r} (the ids): shape {list(t.shape)}, expected [{n}]", None, t.name
        )
    if t.datatype != "BYTES" and t.datatype not in INTEGER:
        raise RequestError(
            422,
            f"input {t.name!r} (the ids): datatype {t.datatype}, expected BYTES or INT64",
            None,
            t.name,
        )
    values = t.data.tolist() if isinstance(t.data, np.ndarray) else t.data
    ids: list[str] = []
    seen: set[str] = set()
    for i, value in enumerate(values):
        try:
            rid = client_id(value, i)
        except RequestError as err:
            message = err.message.replace("'id'", repr(t.name))
            raise RequestError(err.status, message, i, t.name) from None
        if rid in seen:
            raise RequestError(422, f"record {i}: duplicate id {rid!r} in this request", i, t.name)
        seen.add(rid)
        ids.append(rid)
    return Batch(batch.batch_id, ids, True, batch.x)


# --- answers -------------------------------------------------------------------------------------


def answer(
    p: Predictor, batch: Batch, preds: np.ndarray, proba: np.ndarray | None
) -> dict[str, Any]:
    """The infer response body: the outputs asked for (all when none were named)."""
    n = len(batch.ids)
    wanted = batch.outputs if isinstance(batch, V2Batch) else None
    outputs: list[dict[str, Any]] = []
    for name in wanted or output_names(p):
        if name == PREDICT:
            label = p.task == "classification"
            datatype = "INT64" if label else "FP64"
            outputs.append(_out(PREDICT, [n], datatype, p.answer_values(preds)))
        elif name == PROBA and proba is not None:
            outputs.append(_out(PROBA, list(proba.shape), "FP64", proba.ravel()))
        elif name == ID:
            outputs.append(_out(ID, [n], "BYTES", batch.ids))
    body: dict[str, Any] = {"model_name": p.name, "model_version": p.version}
    if isinstance(batch, V2Batch) and batch.request_id is not None:
        body["id"] = batch.request_id
    body["outputs"] = outputs
    return body


def _out(name: str, shape: list[int], datatype: str, data: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def error(err: RequestError) -> dict[str, Any]:
    """The V2 error body: ``{"error": message}`` (the message names input, record, field)."""
    return {"error": err.message}


def feature_datatype(p: Predictor, feature: str) -> str:
    return "BYTES" if feature in p.categorical else "FP64"


def model_metadata(p: Predictor) -> dict[str, Any]:
    """``GET /v2/models/{name}``: one input per feature (the columnar form), the outputs."""
    outputs = [{"name": PREDICT, "datatype": "INT64" if p.classes else "FP64", "shape": [-1]}]
    if p.classes is not None:
        outputs.append({"name": PROBA, "datatype": "FP64", "shape": [-1, len(p.classes)]})
    outputs.append({"name": ID, "datatype": "BYTES", "shape": [-1]})
    return {
        "name": p.name,
        "versions": [p.version],
        "platform": PLATFORM,
        "inputs": [
            {"name": f, "datatype": feature_datatype(p, f), "shape": [-1]} for f in p.features
        ],
        "outputs": outputs,
        "parameters": {"task": p.task, "classes": list(p.classes) if p.classes else None},
    }


def example_request(p: Predictor | None) -> dict[str, Any]:
    """A columnar infer body of two rows for ``p``'s features (the OpenAPI example)."""
    if p is None:
        return {"inputs": []}
    inputs = [
        {
            "name": f,
            "shape": [2],
            "datatype": feature_datatype(p, f),
            "data": ["a", "b"] if f in p.categorical else [0.0, 1.0],
        }
        for f in p.features
    ]
    return {"id": "request-1", "inputs": [*inputs, _id_example()]}


def _id_example() -> dict[str, Any]:
    return {"name": "id", "shape": [2], "datatype": "BYTES", "data": ["row-1", "row-2"]}
