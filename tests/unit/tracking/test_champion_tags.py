"""Champion moves as tags that cannot overflow, and a version's record state, as stored."""

from __future__ import annotations

import json
from dataclasses import replace

from mlrig.tracking import tags
from mlrig.tracking.registry import record_state, usable


def test_bounded_text_fits_and_says_where_the_rest_is() -> None:
    long = "r" * 20_000
    cut = tags.bounded(long, 3000, "artifact champion/x.txt of run abc")
    assert len(cut) <= 3000
    assert cut.startswith("rrr") and cut.endswith(
        "20000 characters; full text: artifact champion/x.txt of run abc]"
    )
    assert tags.bounded("short", 3000) == "short"


def test_every_champion_change_tag_fits_a_postgresql_tag_value() -> None:
    encoded = tags.encode_champion_change("promote", "u" * 900, "why " * 5000, "2026-01-01")
    assert max(len(v) for v in encoded.values()) <= tags.TAG_VALUE_MAX


def test_history_reads_old_single_tag_first_then_events_in_key_order() -> None:
    def entry(v: str) -> dict[str, str | None]:
        return {"version": v, "previous": None, "action": "gate", "by": "b", "reason": "", "at": ""}

    stored = {
        tags.CHAMPION_HISTORY: json.dumps([entry("1"), entry("2")]),
        tags.CHAMPION_EVENT + "20260102T000000000000Z.aa": tags.encode_champion_event(entry("4")),
        tags.CHAMPION_EVENT + "20260101T000000000000Z.ff": tags.encode_champion_event(entry("3")),
        tags.CHAMPION_EVENT + "20260103T000000000000Z.00": "{not json",
        "mlrig.eval_set.digest": "abc",
    }
    assert [e["version"] for e in tags.decode_champion_events(stored)] == ["1", "2", "3", "4"]


def test_a_version_is_usable_only_with_a_complete_record_or_none_at_all() -> None:
    assert usable({tags.RECORD: "complete"}) and usable({})  # {}: registered before the mark
    assert not usable({tags.RECORD: "pending"}) and not usable({tags.RECORD: "failed"})
    assert record_state({}) == "legacy"


def test_labelling_names_target_task_and_threshold() -> None:
    a = tags.encode_labelling("quality", "classification", 6.0)
    assert a == tags.encode_labelling("quality", "classification", 6.0)
    assert a != tags.encode_labelling("quality", "classification", 7.0)
    assert json.loads(a)["positive_threshold"] == 6.0


def test_a_reason_that_grows_when_escaped_still_fits_one_tag_value() -> None:
    """JSON doubles quotes and backslashes: 3,000 of them encode to 6,000 characters."""
    from mlrig.tracking.registry import ChampionChange, fit_reason

    change = ChampionChange("2", "1", "promote", "me", '"\\' * 1500, "2026-01-01T00:00:00+00:00")
    out = fit_reason(change, "artifact champion/k.txt of run r")
    assert len(tags.encode_champion_event(out.__dict__)) <= tags.TAG_VALUE_MAX
    assert out.reason.startswith('"\\"\\') and out.reason.endswith("of run r]")
    assert fit_reason(replace(change, reason="short")).reason == "short"
