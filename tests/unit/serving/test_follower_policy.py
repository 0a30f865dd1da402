"""The follower's pure rules: poll back-off, error lines fit for /ready, and the serving
settings that govern loading trust."""

from __future__ import annotations

import pytest

from mlrig.config import load_settings
from mlrig.errors import ConfigError
from mlrig.serving.follower import describe, next_delay


def test_failed_polls_double_the_wait_up_to_the_cap_and_a_success_resets_it() -> None:
    waits, wait = [], 10.0
    for ok in (False, False, False, False, False, True, False):
        wait = next_delay(wait, base=10.0, cap=60.0, ok=ok)
        waits.append(wait)
    assert waits == [20.0, 40.0, 60.0, 60.0, 60.0, 10.0, 20.0]


def test_a_cap_below_the_base_never_polls_faster_than_the_base() -> None:
    assert next_delay(10.0, base=10.0, cap=5.0, ok=False) == 10.0


def test_error_lines_mask_credentials_keep_the_cause_and_stay_short() -> None:
    try:
        try:
            raise ConnectionError("connect to postgresql://mlflow:s3cret@db:5432/mlflow refused")
        except ConnectionError as inner:
            raise RuntimeError("alias lookup failed") from inner
    except RuntimeError as exc:
        line = describe(exc)
    assert "s3cret" not in line
    assert "postgresql://mlflow:***@db:5432" in line and line.startswith("alias lookup failed")
    assert len(describe(RuntimeError("x" * 1000))) == 300


def test_trusted_types_must_be_qualified_type_names() -> None:
    with pytest.raises(ConfigError, match=r"serving\.trusted_types.*'os system'"):
        load_settings(overrides={"serving": {"trusted_types": ["os system"]}})
    ok = load_settings(overrides={"serving": {"trusted_types": ["_operator.pos"]}})
    assert ok.serving.trusted_types == ["_operator.pos"]


def test_safe_loading_is_the_default() -> None:
    serving = load_settings().serving
    assert serving.allow_pickle is False
    assert serving.cache is True
    assert all(t.startswith("sklearn.") for t in serving.trusted_types)


def test_a_registry_ref_and_a_model_uri_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="model and model_uri are exclusive"):
        load_settings(overrides={"serving": {"model": "m@champion", "model_uri": "runs:/x/model"}})
