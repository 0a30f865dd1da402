"""The client-id rule: what the store can key on, refused at the edge with a reason."""

from __future__ import annotations

import pytest

from mlrig.predictions.ids import MAX_ID_CHARS, check_client_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [("ride-1", "ride-1"), (42, "42"), ("é" * MAX_ID_CHARS, "é" * MAX_ID_CHARS), (-7, "-7")],
)
def test_accepted_ids_become_the_text_the_store_keys_on(value: object, expected: str) -> None:
    assert check_client_id(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("x" * (MAX_ID_CHARS + 1), f"has {MAX_ID_CHARS + 1} characters; at most {MAX_ID_CHARS}"),
        ("a\x00b", "NUL"),
        ("", "must not be empty"),
        (True, "not a boolean"),
        (None, "not null"),
        (1.5, "not a floating-point number"),
        (1e29, "send large or fractional ids as strings"),
        (["a"], "not a list"),
        ({"a": 1}, "not an object"),
    ],
)
def test_refused_ids_say_why_without_echoing_the_id(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as err:
        check_client_id(value)
    if isinstance(value, str) and len(value) > 10:
        assert value not in str(err.value)  # a 10 kB id is not copied into the answer
