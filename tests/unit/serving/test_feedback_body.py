"""Parsing and reading a /feedback body: every refusal names the record and field."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from mlrig.serving.feedback import parse_feedback, read_body
from mlrig.serving.predictor import RequestError


def _refusal(body: object) -> RequestError:
    with pytest.raises(RequestError) as err:
        parse_feedback(orjson.dumps(body))
    return err.value


def test_pairs_come_back_in_order_with_integer_ids_as_text() -> None:
    body = [{"id": "a", "actual": 1}, {"id": 7, "actual": 2.5}]
    assert parse_feedback(orjson.dumps(body)) == [("a", 1.0), ("7", 2.5)]


def test_the_same_id_twice_in_one_request_is_a_422_naming_it() -> None:
    err = _refusal([{"id": "a", "actual": 1}, {"id": "b", "actual": 2}, {"id": "a", "actual": 3}])
    assert (err.status, err.record, err.field) == (422, 2, "id")
    assert "'a'" in err.message and "record 0" in err.message


def test_an_integer_id_and_its_text_are_the_same_id() -> None:
    err = _refusal([{"id": 5, "actual": 1}, {"id": "5", "actual": 2}])
    assert err.status == 422 and err.record == 1


@pytest.mark.parametrize(
    ("record", "field", "words"),
    [
        ({"id": "x" * 129, "actual": 1}, "id", "got 129"),
        ({"id": "a\u0000b", "actual": 1}, "id", "U+0000"),
        ({"id": "", "actual": 1}, "id", "empty"),
        ({"id": None, "actual": 1}, "id", "null"),
        ({"id": True, "actual": 1}, "id", "got bool"),
        ({"id": "a", "actual": "5"}, "actual", "number"),
        ({"id": "a", "actual": True}, "actual", "number"),
        ({"actual": 1}, "id", "expected an object"),
        ("a", "id", "expected an object"),
    ],
)
def test_a_bad_record_is_refused_with_its_index_and_field(
    record: object, field: str, words: str
) -> None:
    err = _refusal([{"id": "ok", "actual": 1}, record])
    assert (err.status, err.record, err.field) == (422, 1, field)
    assert words in err.message and err.message.startswith("record 1:")


@pytest.mark.parametrize("body", [b"", b"  ", b"[", b"[]"])
def test_empty_or_broken_bodies_are_400(body: bytes) -> None:
    with pytest.raises(RequestError) as err:
        parse_feedback(body)
    assert err.value.status == 400


class _Chunks:
    """An endless chunked body that counts how much of it was pulled."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pulled = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        self.pulled += 1
        return b" " * self.size


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    chunks = _Chunks(100)  # never ends: reading it whole would never return
    with pytest.raises(RequestError) as err:
        asyncio.run(read_body({}, chunks, limit=1024))
    assert err.value.status == 413
    assert chunks.pulled == 11  # 1,100 bytes: the first chunk past 1,024, and not one more


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    chunks = _Chunks(10)
    with pytest.raises(RequestError) as err:
        asyncio.run(read_body({"content-length": "5000"}, chunks, limit=1024))
    assert err.value.status == 413 and chunks.pulled == 0


def test_a_body_at_the_limit_is_read_whole() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 256

    assert asyncio.run(read_body({}, parts(), limit=1024)) == b"x" * 1024


def test_the_documented_schema_states_the_same_id_rule() -> None:
    from mlrig.predictions.ids import MAX_ID_CHARS
    from mlrig.serving.schemas import feedback_schema

    schema = feedback_schema()["requestBody"]["content"]["application/json"]["schema"]
    as_text = schema["anyOf"][0]["properties"]["id"]["anyOf"][0]
    assert as_text["maxLength"] == MAX_ID_CHARS and as_text["minLength"] == 1
    assert _refusal([{"id": "x" * (MAX_ID_CHARS + 1), "actual": 1}]).field == "id"
    assert parse_feedback(orjson.dumps({"id": "x" * MAX_ID_CHARS, "actual": 1}))[0][1] == 1.0


def test_a_client_that_disconnects_mid_body_gets_a_400_not_a_partial_read() -> None:
    from starlette.requests import ClientDisconnect

    async def parts() -> AsyncIterator[bytes]:
        yield b'[{"id": "a", "actual": 1},'
        raise ClientDisconnect()

    with pytest.raises(RequestError) as err:
        asyncio.run(read_body({}, parts(), limit=1024))
    assert err.value.status == 400 and "disconnected" in err.value.message
