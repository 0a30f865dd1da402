"""OpenAPI documentation of the served model's real inputs, built once from its signature.

The hot routes parse raw bytes themselves (see predictor.py); these pydantic models exist so
`/docs` shows the exact feature names and types a client must send.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, create_model


class Feedback(BaseModel):
    # the client-id rule of mlrig.predictions.ids (1–128 characters, no NUL), as the server checks it
    id: (
        Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00]*$")] | int
    ) = Field(description="The id returned by /predict (ids are per model).")
    actual: float = Field(description="The observed ground truth.")


def record_model(features: Sequence[str], categorical: Sequence[str] = ()) -> type[BaseModel]:
    fields: dict[str, Any] = {"id": (str | None, Field(None, description="Optional request id."))}
    fields.update(
        {f: (str | int if f in categorical else float, Field(..., alias=f)) for f in features}
    )
    return create_model("Record", **fields)


def predict_schema(
    features: Sequence[str], categorical: Sequence[str] = (), invocations: bool = False
) -> dict[str, Any]:
    record = record_model(features, categorical).model_json_schema()
    record["additionalProperties"] = False
    if invocations:
        record["properties"].pop("id", None)
        body = {
            "type": "object",
            "description": "MLflow scoring protocol: exactly one of these keys.",
            "properties": {
                "dataframe_split": {
                    "type": "object",
                    "properties": {
                        "columns": {
                            "type": "array",
                            "items": {"type": "string", "enum": list(features)},
                        },
                        "data": {
                            "type": "array",
                            "items": {
                                "type": "array",
                                # rows mix numbers and category strings when there are any
                                "items": {} if categorical else {"type": "number"},
                            },
                        },
                    },
                },
                "dataframe_records": {"type": "array", "items": record},
                "instances": {"type": "array", "items": record},
                "inputs": {"type": "array", "items": record},
            },
        }
        content = {"application/json": {"schema": body}, "text/csv": {"schema": {"type": "string"}}}
    else:
        content = {
            "application/json": {"schema": {"anyOf": [record, {"type": "array", "items": record}]}}
        }
    return {"requestBody": {"required": True, "content": content}}


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
