"""The overload settings: sensible defaults, env overrides, and refusals that name the field."""

from __future__ import annotations

import pytest

from mlrig.config import load_settings
from mlrig.errors import ConfigError


def test_defaults_bound_the_log_and_every_wait() -> None:
    cfg = load_settings().serving
    assert cfg.log_queue_rows >= cfg.max_batch_rows  # a full-size batch fits an empty queue
    assert 0 < cfg.commit_timeout_ms <= 30_000 and cfg.retry_after_s >= 1


def test_environment_overrides_reach_the_serving_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLRIG_SERVING__LOG_QUEUE_ROWS", "64")
    monkeypatch.setenv("MLRIG_SERVING__MAX_BATCH_ROWS", "64")
    monkeypatch.setenv("MLRIG_SERVING__COMMIT_TIMEOUT_MS", "250")
    monkeypatch.setenv("MLRIG_SERVING__RETRY_AFTER_S", "4")
    cfg = load_settings().serving
    assert (cfg.log_queue_rows, cfg.commit_timeout_ms, cfg.retry_after_s) == (64, 250.0, 4)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("log_queue_rows", 0),
        ("commit_timeout_ms", 0),
        ("commit_timeout_ms", 3_600_000),
        ("retry_after_s", 0),
    ],
)
def test_a_bad_overload_setting_is_refused_naming_the_field(field: str, value: int) -> None:
    with pytest.raises(ConfigError, match=rf"serving\.{field}: "):
        load_settings(overrides={"serving": {field: value}})


def test_a_log_bound_below_the_largest_batch_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"log_queue_rows \(100\) must be at least max_batch_rows"
    ):
        load_settings(overrides={"serving": {"log_queue_rows": 100, "max_batch_rows": 101}})
