from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlrig.data.validate import (
    Contract,
    Validated,
    _numeric_without_pandera,
    _Spec,
    _with_pandera,
    validate_frame,
)
from mlrig.errors import DataValidationError


def _frame(**cols: list[object]) -> pd.DataFrame:
    base: dict[str, list[object]] = {
        "a": [1, 2, 3, 4],
        "b": [0.5, 0.1, 0.2, 0.3],
        "quality": [5, 6, 5, 7],
    }
    base.update(cols)
    return pd.DataFrame(base)


def check(frame: pd.DataFrame, target: str = "quality", **contract: object) -> Validated:
    return validate_frame(frame, "f.csv", Contract(target, **contract))  # type: ignore[arg-type]


def test_valid_frame_is_coerced_to_float_with_features_in_file_order() -> None:
    out = check(_frame())
    assert out.schema.features == ("a", "b")
    assert out.schema.task == "regression" and "inferred as regression" in (out.note or "")
    assert all(str(t) == "float64" for t in out.frame.dtypes)


def test_missing_target_names_file_and_column() -> None:
    with pytest.raises(DataValidationError, match=r"f.csv: target column 'score' is missing"):
        check(_frame(), "score")


def test_nans_name_the_column_and_line() -> None:
    with pytest.raises(DataValidationError) as err:
        check(_frame(b=[0.1, np.nan, 0.3, 0.4]))
    assert "column 'b': missing values (NaN) (1 row, e.g. line 3)" in str(err.value)


def test_non_numeric_feature_names_the_value() -> None:
    with pytest.raises(DataValidationError) as err:
        check(_frame(a=["1", "two", "3", "4"]))
    assert "column 'a': non-numeric values" in str(err.value)
    assert "'two'" in str(err.value)


def test_constant_target_is_refused() -> None:
    with pytest.raises(DataValidationError, match="column 'quality': target is constant"):
        check(_frame(quality=[5, 5, 5, 5]))


def test_expected_features_flag_missing_and_extra_columns_together() -> None:
    with pytest.raises(DataValidationError) as err:
        check(_frame(extra=[1, 2, 3, 4]), features=["a", "b", "c"])
    msg = str(err.value)
    assert "column 'c': missing column" in msg
    assert "column 'extra': unexpected extra column" in msg


def test_frame_with_only_the_target_has_no_features() -> None:
    with pytest.raises(DataValidationError, match="no feature columns"):
        check(pd.DataFrame({"quality": [1, 2]}))


def test_text_columns_become_categorical_and_ids_can_be_declared_categorical() -> None:
    frame = _frame(colour=["red", "white", "red", "rose"], zone=[132, 7, 132, 48])
    out = check(frame, categorical=None)
    assert out.schema.categorical == ("colour",)
    out = check(frame, categorical=["colour", "zone"])
    assert out.schema.categorical == ("colour", "zone")
    assert out.schema.numeric == ("a", "b")
    assert out.frame["zone"].tolist() == ["132", "7", "132", "48"]


def test_unknown_categorical_column_is_named() -> None:
    with pytest.raises(DataValidationError, match=r"data\.categorical names 'nope'"):
        check(_frame(), categorical=["nope"])


def test_positive_threshold_makes_binary_labels() -> None:
    out = check(_frame(), positive_threshold=6)
    assert out.schema.task == "classification"
    assert out.frame["quality"].tolist() == [0, 1, 0, 1]


def test_threshold_that_leaves_one_class_is_refused() -> None:
    with pytest.raises(DataValidationError, match="puts every row of 'quality' in one class"):
        check(_frame(), positive_threshold=9)


def test_binary_target_is_inferred_as_classification_with_a_note() -> None:
    out = check(_frame(quality=[0, 1, 1, 0]))
    assert out.schema.task == "classification"
    assert "inferred as classification" in (out.note or "")


def test_text_labels_are_refused_with_a_hint() -> None:
    with pytest.raises(DataValidationError, match="labels must be integers or booleans"):
        check(_frame(quality=["good", "bad", "good", "bad"]), task="classification")


def test_continuous_target_cannot_be_classified() -> None:
    with pytest.raises(DataValidationError, match="whole numbers"):
        check(_frame(quality=[0.5, 1.5, 2.0, 1.0]), task="classification")


def test_dropped_columns_are_ignored_and_must_exist() -> None:
    frame = _frame(pickup=["2024-01-01 10:00"] * 4)
    assert check(frame, drop=["pickup"]).schema.features == ("a", "b")
    with pytest.raises(DataValidationError, match=r"data\.drop names missing column"):
        check(frame, drop=["dropoff"])


@pytest.mark.parametrize(
    ("frame", "spec"),
    [
        (_frame(), _Spec(["a", "b"], set(), "quality", True, False, True)),
        (_frame(), _Spec(["a", "b"], set(), "quality", True, True, True)),
        (_frame(quality=[0, 1, 1, 0]), _Spec(["a", "b"], set(), "quality", False, False, True)),
        (
            _frame(quality=[True, False, True, True]),
            _Spec(["a"], set(), "quality", False, False, True),
        ),
        (
            _frame(a=np.array([1, 2, 3, 4], dtype="uint8"), c=[1.0, 2.0, 3.0, 4.0]),
            _Spec(["a", "b"], set(), "quality", True, False, True),
        ),
        (
            _frame(a=[True, False, True, False]),
            _Spec(["a", "b"], set(), "quality", True, False, True),
        ),
        (_frame(quality=[5, 5, 5, 5]), _Spec(["a", "b"], set(), "quality", True, False, False)),
    ],
)
def test_numeric_frames_get_pandera_s_result_without_pandera(
    frame: pd.DataFrame, spec: _Spec
) -> None:
    quick = _numeric_without_pandera(frame, spec)
    assert quick is not None
    pd.testing.assert_frame_equal(quick, _with_pandera(frame, "f.csv", spec))


@pytest.mark.parametrize(
    ("frame", "spec"),
    [
        (_frame(a=[1.0, None, 3.0, 4.0]), _Spec(["a", "b"], set(), "quality", True, False, True)),
        (_frame(a=["1", "2", "x", "4"]), _Spec(["a", "b"], set(), "quality", True, False, True)),
        (
            _frame(a=pd.array([1, 2, 3, 4], dtype="Int64")),
            _Spec(["a", "b"], set(), "quality", True, False, True),
        ),
        (_frame(quality=[5, 5, 5, 5]), _Spec(["a", "b"], set(), "quality", True, False, True)),
        (_frame(c=[1, 2, 3, 4]), _Spec(["a", "b"], set(), "quality", True, True, True)),
        (_frame(), _Spec(["a", "b", "c"], set(), "quality", True, True, True)),
        (_frame(a=["x", "y", "x", "y"]), _Spec(["a", "b"], {"a"}, "quality", True, False, True)),
    ],
)
def test_anything_pandera_must_judge_goes_to_pandera(frame: pd.DataFrame, spec: _Spec) -> None:
    assert _numeric_without_pandera(frame, spec) is None


def test_a_valid_numeric_frame_does_not_import_pandera() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pandas as pd\n"
        "from mlrig.data.validate import Contract, validate_frame\n"
        "f = pd.DataFrame({'a': [1, 2, 3], 'quality': [5.0, 6.0, 7.0]})\n"
        "validate_frame(f, 'f.csv', Contract('quality'))\n"
        "print('pandera' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_id_columns_are_not_features_unless_listed() -> None:
    frame = _frame(id=[116139, 256736, 3, 4], ride_id=["r1", "r2", "r3", "r4"])
    ids = ("id", "*_id")
    assert check(frame, id_columns=ids).schema.features == ("a", "b")
    listed = check(frame, id_columns=ids, features=["a", "b", "id"], drop=["ride_id"])
    assert listed.schema.features == ("a", "b", "id")  # named as a feature: stays one
    assert "id" in check(frame).schema.features  # no patterns: every column is a feature
