"""Every bad training dataset is a DataValidationError naming the file, column, row or class —
never a traceback from scikit-learn, never a silently renamed column."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlrig.data.ingest import load_table
from mlrig.data.schema import FeatureSchema
from mlrig.data.split import split_frame, split_problem, training_problem
from mlrig.data.validate import Contract, validate_frame
from mlrig.errors import DataValidationError

REG = Contract(target="y", task="regression")
CLS = Contract(target="y", task="classification")


def _csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))


def _refused(frame: pd.DataFrame, contract: Contract = REG) -> str:
    with pytest.raises(DataValidationError) as info:
        validate_frame(frame, "bad.csv", contract)
    assert "bad.csv" in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "column", "line", "value"),
    [
        ("a,b,y\n1,2,1\ninf,2,2\n3,2,3\n4,5,4\n", "a", 3, "inf"),
        ("a,b,y\n1,2,1\n2,-inf,2\n3,2,3\n4,5,4\n", "b", 3, "-inf"),
        ("a,b,y\n1,2,1\n2,2,2\n3,1e999,3\n4,5,4\n", "b", 4, "inf"),  # overflows float64
        ("a,b,y\n1,2,1\n2,2,2\n3,2,3\n4,5,Infinity\n", "y", 5, "inf"),  # the target
        ("a,b,y\n1,x,1\n2,y,2\n1e400,z,3\n4,w,4\n", "a", 4, "inf"),  # beside a text column
        # finite, but scaling squares it: overflow, then scikit-learn fits on NaN
        ("a,b,y\n1,2,1\n1e308,2,2\n3,2,3\n4,5,4\n", "a", 3, "1e+308"),
        ("a,b,y\n1,2,1\n2,2,2\n3,2,-2e200\n4,5,4\n", "y", 4, "-2e+200"),
    ],
)
def test_non_finite_values_are_refused_with_column_and_line(
    text: str, column: str, line: int, value: str
) -> None:
    message = _refused(_csv(text))
    assert f"column {column!r}: non-finite or too large values" in message
    assert f"line {line}" in message
    assert value in message


def test_a_number_too_large_in_a_text_column_is_refused() -> None:
    """A column read as text (one typo) is coerced to float64 by pandera: "1e999" becomes inf
    there and must be reported with the typo, not trained on."""
    frame = _csv("a,y\n1,1\nabc,2\n1e999,3\n4,4\n5,5\n")
    message = _refused(frame)
    assert "column 'a'" in message
    assert "'abc'" in message  # the non-numeric typo
    assert "non-finite" in message and "line 4" in message


def test_a_non_finite_class_label_is_refused() -> None:
    frame = pd.DataFrame({"a": [1.0, 2, 3, 4, 5], "y": [0, 1, 0, np.inf, 1]})
    message = _refused(frame, CLS)
    assert "column 'y'" in message and "non-finite class label" in message and "line 5" in message


def test_a_target_full_of_nan_is_refused() -> None:
    message = _refused(_csv("a,y\n1,\n2,\n3,\n4,\n"))
    assert "target column 'y' has no values" in message


def test_a_constant_regression_target_is_refused() -> None:
    message = _refused(pd.DataFrame({"a": [1.0, 2, 3, 4], "y": [7.0] * 4}))
    assert "column 'y': target is constant" in message


def test_duplicated_column_names_in_a_frame_are_refused() -> None:
    frame = pd.DataFrame([[1, 2, 3], [4, 5, 6]], columns=["a", "a", "y"])
    assert "duplicated column name(s) 'a'" in _refused(frame)


def test_duplicated_column_names_in_a_csv_header_are_refused(tmp_path: Path) -> None:
    """pandas would rename the second 'a' to 'a.1' and train on a column the file lacks."""
    path = tmp_path / "dup.csv"
    path.write_text("a,b,a,y\n1,2,3,4\n5,6,7,8\n")
    with pytest.raises(DataValidationError, match=r"dup\.csv: duplicated column name\(s\) 'a'"):
        load_table(path)


def test_a_header_without_repeats_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text("a,a.1,y\n1,2,3\n")
    assert list(load_table(path).frame.columns) == ["a", "a.1", "y"]


SCHEMA = FeatureSchema(("a",), "y", (), "classification")


def _classes(counts: dict[int, int]) -> pd.DataFrame:
    labels = [c for c, n in counts.items() for _ in range(n)]
    return pd.DataFrame({"a": np.arange(len(labels), dtype=float), "y": labels})


def test_a_class_with_a_single_row_names_the_class() -> None:
    frame = _classes({0: 20, 1: 20, 7: 1})
    with pytest.raises(DataValidationError) as info:
        split_frame(frame, SCHEMA, 0.25, 1, stratify=True, source="data file f.csv")
    message = str(info.value)
    assert message.startswith("data file f.csv: column 'y': class(es) 7 have a single row")


def test_more_classes_than_held_out_rows_is_refused() -> None:
    """8 rows, 4 classes of 2: sklearn holds out ceil(0.25 × 8) = 2 rows < 4 classes."""
    frame = _classes({0: 2, 1: 2, 2: 2, 3: 2})
    problem = split_problem(frame["y"], 0.25, stratify=True)
    assert problem is not None and "4 classes" in problem and "2 evaluation" in problem
    with pytest.raises(DataValidationError):
        split_frame(frame, SCHEMA, 0.25, 1, stratify=True)


@pytest.mark.parametrize("rows", [1, 2, 3, 4])
def test_too_few_rows_for_a_regression_split(rows: int) -> None:
    frame = pd.DataFrame({"a": np.arange(rows, dtype=float), "y": np.arange(rows, dtype=float)})
    schema = FeatureSchema(("a",), "y")
    with pytest.raises(DataValidationError, match=f"too few rows.*{rows} row"):
        split_frame(frame, schema, 0.25, 1)


@pytest.mark.parametrize(
    ("counts", "test_size"),
    [({0: 2, 1: 2}, 0.5), ({0: 3, 1: 3, 2: 3}, 0.34), ({0: 50, 1: 2}, 0.25), ({0: 5, 1: 6}, 0.3)],
)
def test_split_problem_agrees_with_scikit_learn(counts: dict[int, int], test_size: float) -> None:
    """Whatever split_problem accepts, train_test_split accepts, every row on one side."""
    frame = _classes(counts)
    assert split_problem(frame["y"], test_size, stratify=True) is None
    split = split_frame(frame, SCHEMA, test_size, 3, stratify=True)
    assert len(split.y_train) + len(split.y_test) == len(frame)
    assert set(split.y_train) | set(split.y_test) == set(counts)


def test_the_smallest_splittable_regression_sets_split() -> None:
    schema = FeatureSchema(("a",), "y")
    for rows in range(5, 12):
        frame = pd.DataFrame({"a": np.arange(rows, dtype=float), "y": np.arange(rows, dtype=float)})
        split = split_frame(frame, schema, 0.25, 1)
        assert min(len(split.y_train), len(split.y_test)) >= 2


def test_training_rows_must_be_able_to_train() -> None:
    y = pd.Series([1.0, 2.0, 3.0], name="y")
    assert training_problem(y, classification=False) is None
    assert "only 1 training row(s)" in str(training_problem(y.head(1), classification=False))
    assert "only 0 training row(s)" in str(training_problem(y.head(0), classification=True))
    one_class = pd.Series([4, 4, 4], name="y")
    assert "only class 4" in str(training_problem(one_class, classification=True))
    assert training_problem(one_class, classification=False) is None  # a constant fit is valid


def test_large_but_safe_values_pass() -> None:
    frame = pd.DataFrame({"a": [1e149, -1e149, 3.0, 4.0], "y": [1.0, 2.0, 3.0, 1e100]})
    out = validate_frame(frame, "ok.csv", REG).frame
    assert out["a"].tolist() == [1e149, -1e149, 3.0, 4.0]


@pytest.mark.parametrize(
    ("contract", "expected"),
    [
        (Contract(target="y", features=["a", "y"]), "data.features lists the target column 'y'"),
        (Contract(target="y", features=["a", "a"]), "data.features lists 'a' more than once"),
        (Contract(target="y", drop=["y"]), "data.drop names the target column 'y'"),
    ],
)
def test_a_contract_that_contradicts_itself_is_refused(contract: Contract, expected: str) -> None:
    """These trained silently before: on the answer itself, or on a feature fed twice."""
    frame = pd.DataFrame({"a": [1.0, 2, 3, 4], "y": [1.0, 2, 3, 4]})
    assert expected in _refused(frame, contract)
