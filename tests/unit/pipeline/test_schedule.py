"""Parsing a schedule's options: intervals, cron expressions, exactly one of the two."""

from __future__ import annotations

import datetime as dt

import pytest

from mlrig.errors import ConfigError
from mlrig.pipeline.schedule import ScheduleSpec, deployment_name, parse_every, schedule_spec


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("2m", 120), ("1h", 3600), ("1d", 86400), ("1h30m", 5400), ("0.5s", 0.5)],
)
def test_every_accepts_a_number_and_a_unit(text: str, seconds: float) -> None:
    assert parse_every(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["2x", "2", "m", "", "every 2m", "0s", "-1m", "2m junk"])
def test_every_refuses_anything_else_naming_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match="--every"):
        parse_every(text)


def test_exactly_one_of_every_and_cron() -> None:
    with pytest.raises(ConfigError, match=r"exactly one of --every .* and --cron"):
        schedule_spec(None, None)
    with pytest.raises(ConfigError, match=r"exactly one of --every .* and --cron"):
        schedule_spec("2m", "0 3 * * *")
    assert schedule_spec("2m", None) == ScheduleSpec(every=dt.timedelta(minutes=2))
    assert schedule_spec(None, "0 3 * * *") == ScheduleSpec(cron="0 3 * * *")


@pytest.mark.parametrize("cron", ["0 3 * *", "61 * * * *", "every day", "H 3 * * *"])
def test_cron_refuses_invalid_expressions_naming_the_option(cron: str) -> None:
    with pytest.raises(ConfigError, match="--cron"):
        schedule_spec(None, cron)


def test_runner_polls_a_fraction_of_short_intervals_and_at_most_every_10_s() -> None:
    assert ScheduleSpec(every=dt.timedelta(seconds=2)).poll_seconds() == 0.5
    assert ScheduleSpec(every=dt.timedelta(seconds=20)).poll_seconds() == 5
    assert ScheduleSpec(every=dt.timedelta(hours=1)).poll_seconds() == 10
    assert ScheduleSpec(cron="0 3 * * *").poll_seconds() == 10
    assert ScheduleSpec(every=dt.timedelta(minutes=2)).describe() == "every 2m"
    assert ScheduleSpec(cron="0 3 * * *").describe() == "cron '0 3 * * *'"


def test_deployment_names_say_flow_and_model() -> None:
    assert deployment_name("loop", "wine-quality") == "mlrig-loop-wine-quality"
