"""mlrig's MLflow tags: names and encodings as stored, and the gate decision read back."""

from __future__ import annotations

import math

from mlrig.tracking import tags


def test_gate_tags_round_trip() -> None:
    encoded = tags.encode_gate(True, "ks", 0.5123456789, 0.41, 0.01, "ks 0.5123 vs champion 0.4100")
    assert tags.decode_gate(encoded) == tags.GateTags(
        True, "ks", 0.512346, 0.41, 0.01, "ks 0.5123 vs champion 0.4100"
    )


def test_gate_tags_are_stored_as_before() -> None:
    assert tags.encode_gate(False, "rmse", 0.6123456789, None, 0.0, "why") == {
        "mlrig.gate.promote": "false",
        "mlrig.gate.metric": "rmse",
        "mlrig.gate.challenger": "0.612346",
        "mlrig.gate.champion": "",
        "mlrig.gate.margin": "0",
        "mlrig.gate.reason": "why",
        "mlrig.gate.governed_by": "frozen",
        "mlrig.gate.rule": "",
        "mlrig.gate.sets": "[]",
    }


def test_a_version_gated_before_the_recent_slice_reads_as_frozen() -> None:
    old = {k: v for k, v in tags.encode_gate(True, "rmse", 0.7, 0.8, 0.0, "x").items()}
    for key in ("mlrig.gate.governed_by", "mlrig.gate.rule", "mlrig.gate.sets"):
        del old[key]
    decoded = tags.decode_gate(old)
    assert decoded is not None and decoded.governed_by == "frozen" and decoded.sets == ()


def test_no_champion_reads_back_as_none() -> None:
    decoded = tags.decode_gate(tags.encode_gate(True, "rmse", 0.7, None, 0.0, "no champion yet"))
    assert decoded is not None and decoded.champion is None and decoded.promote


def test_tags_without_a_gate_decision_decode_to_none() -> None:
    assert tags.decode_gate({}) is None
    assert tags.decode_gate({"mlrig.task": "regression", "mlrig.gate.reason": "x"}) is None


def test_unparseable_numbers_read_as_nan() -> None:
    decoded = tags.decode_gate({"mlrig.gate.metric": "rmse", "mlrig.gate.challenger": "?"})
    assert decoded is not None
    assert math.isnan(decoded.challenger) and math.isnan(decoded.margin)
    assert not decoded.promote and decoded.reason == ""


def test_run_tags_name_the_data_and_the_evaluation_set() -> None:
    assert tags.encode_run("0.1.0", "regression", "d1", "wine.csv", "e1", None) == {
        "mlrig.version": "0.1.0",
        "mlrig.task": "regression",
        "mlrig.data_digest": "d1",
        "mlrig.data_source": "wine.csv",
        "mlrig.eval_set.digest": "e1",
        "mlrig.eval_set.run_id": "this run",
    }
    later = tags.encode_run("0.1.0", "regression", "d1", "wine.csv", "e1", "abc")
    assert later[tags.EVAL_SET_RUN_ID] == "abc"


def test_champion_study_and_trial_tags() -> None:
    assert tags.encode_champion_change("rollback", "ana", "bad", "2026-01-01T00:00:00+00:00") == {
        "mlrig.champion.action": "rollback",
        "mlrig.champion.by": "ana",
        "mlrig.champion.reason": "bad",
        "mlrig.champion.at": "2026-01-01T00:00:00+00:00",
    }
    assert tags.encode_study("s", ["ridge", "elasticnet"]) == {
        "mlrig.study": "s",
        "mlrig.tuned_families": "ridge,elasticnet",
    }
    assert tags.encode_trial(3, "PRUNED") == {"mlrig.trial": "3", "mlrig.state": "PRUNED"}


def test_every_tag_name_is_an_mlrig_name() -> None:
    names = [v for k, v in vars(tags).items() if k.isupper() and isinstance(v, str)]
    names.remove(tags.EVAL_SET_THIS_RUN)  # a value, not a name
    assert names and all(n.startswith("mlrig.") for n in names)
    assert len(names) == len(set(names))
