"""The client-id rule: what the store can key on, refused at the edge with a reason."""

from __future__ import annotations

import pytest

from mlrig.predictions.ids import MAX_ID_CHARS, check_client_id


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
