"""`mlrig run` on the two datasets the issue names (an ``inf``, a class with one row), and one
whose training rows all vanish as copies of evaluation rows: exit 3 and a message naming the
column, line or class, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli


def _rows(n: int) -> list[str]:
    return [f"{i},{i % 7},{i % 2}" for i in range(n)]


@pytest.mark.parametrize(
    ("body", "env", "expected"),
    [
        pytest.param(
            # a regression target; line 5 of the file holds inf in feature b
            ["a,b,y", "1,2,1.5", "2,3,2.5", "3,4,3.5", "4,inf,4.5"]
            + [f"{i},{i},{i}.5" for i in range(5, 40)],
            {},
            ["column 'b': non-finite or too large values", "line 5", "inf"],
            id="inf-feature",
        ),
        # the two below reach the split, after the MLflow store is created (≈10–25 s loaded)
        pytest.param(
            # classes 0 and 1 with 20 rows each, class 2 with a single row
            ["a,b,y", *_rows(40), "99,1,2"],
            {"MLRIG_DATA__TASK": "classification"},
            ["column 'y'", "class(es) 2 have a single row"],
            marks=pytest.mark.slow,
            id="single-row-class",
        ),
        pytest.param(
            # two distinct rows, 20 copies each: the evaluation set takes both, and with them
            # every training row (copies of evaluation rows never train); sklearn crashed
            ["a,b,y"] + ["1,2,3.5", "2,3,4.5"] * 20,
            {"MLRIG_DATA__TASK": "regression"},
            ["only 0 training row(s) remain", "add distinct rows"],
            marks=pytest.mark.slow,
            id="every-row-a-copy-of-an-evaluation-row",
        ),
    ],
)
def test_bad_training_data_exits_3_naming_where(
    tmp_path: Path, home: Path, body: list[str], env: dict[str, str], expected: list[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(body) + "\n")
    args = ("run", "--home", str(home), "--data", str(path), "--target", "y", "--quiet")
    done = run_cli(*args, env=env)
    assert done.returncode == 3, done.stderr
    assert f"error: data file {path}: " in done.stderr, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
