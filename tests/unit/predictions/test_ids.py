"""The client-id rule: what the store can key on, refused at the edge with a reason."""

from __future__ import annotations

import pytest

from mlrig.predictions.ids import MAX_ID_CHARS, check_client_id, id_field


@pytest.mark.parametrize(
    ("value", "expected"),
    [("ride-1", "ride-1"), (42, "42"), (38.0, "38"), ("é" * MAX_ID_CHARS, "é" * MAX_ID_CHARS), (-7, "-7")],
)
def test_accepted_ids_become_the_text_the_store_keys_on(value: object, expected: str) -> None:
    assert check_client_id(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("x" * (MAX_ID_CHARS + 1), f"at most {MAX_ID_CHARS} characters long, got {MAX_ID_CHARS + 1}"),
        ("a\x00b", "control characters, got U\\+0000 at position 1"),
        ("line\nbreak", "U\\+000A"),
        ("", "must not be empty"),
        (True, "got bool"),
        (None, "got null"),
        (1.5, "got float"),
        (2**60, "within"),
        (["a"], "got list"),
        ({"a": 1}, "got dict"),
    ],
)
def test_refused_ids_say_why_without_echoing_the_id(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as err:
        check_client_id(value)
    if isinstance(value, str) and len(value) > 10:
        assert value not in str(err.value)  # a 10 kB id is not copied into the answer


def test_id_field_is_the_one_id_named_non_feature() -> None:
    assert id_field(["ride_id", "ride"], ["trip_distance"]) == "ride_id"  # the zoomcamp
    assert id_field(["V1", "Amount", "id"], ["V1", "Amount"]) == "id"  # ml-pipes
    assert id_field(["store_id", "x"], ["store_id", "x"]) is None  # a feature stays a feature
    assert id_field(["PULocationID", "trip_distance"], []) is None  # case-sensitive suffix
    assert id_field(["key"], [], ["key"]) == "key"  # configurable
    with pytest.raises(ValueError, match="'id' and 'ride_id'"):
        id_field(["id", "ride_id"], [])
