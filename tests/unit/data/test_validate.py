from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlrig.data.validate import validate_frame
from mlrig.errors import DataValidationError


def _frame(**cols: list[object]) -> pd.DataFrame:
    base: dict[str, list[object]] = {
        "a": [1, 2, 3, 4],
        "b": [0.5, 0.1, 0.2, 0.3],
        "quality": [5, 6, 5, 7],
    }
    base.update(cols)
    return pd.DataFrame(base)


def test_valid_frame_is_coerced_to_float_with_features_in_file_order() -> None:
    frame, schema = validate_frame(_frame(), "f.csv", "quality")
    assert schema.features == ("a", "b")
    assert all(str(t) == "float64" for t in frame.dtypes)


def test_missing_target_names_file_and_column() -> None:
    with pytest.raises(DataValidationError, match=r"f.csv: target column 'score' is missing"):
        validate_frame(_frame(), "f.csv", "score")


def test_nans_name_the_column_and_line() -> None:
    with pytest.raises(DataValidationError) as err:
        validate_frame(_frame(b=[0.1, np.nan, 0.3, 0.4]), "f.csv", "quality")
    assert "column 'b': missing values (NaN) (1 row, e.g. line 3)" in str(err.value)


def test_non_numeric_feature_names_the_value() -> None:
    with pytest.raises(DataValidationError) as err:
        validate_frame(_frame(a=["1", "two", "3", "4"]), "f.csv", "quality")
    assert "column 'a': non-numeric values" in str(err.value)
    assert "'two'" in str(err.value)


def test_constant_target_is_refused() -> None:
    with pytest.raises(DataValidationError, match="column 'quality': target is constant"):
        validate_frame(_frame(quality=[5, 5, 5, 5]), "f.csv", "quality")


def test_expected_features_flag_missing_and_extra_columns_together() -> None:
    with pytest.raises(DataValidationError) as err:
        validate_frame(_frame(extra=[1, 2, 3, 4]), "f.csv", "quality", features=["a", "b", "c"])
    msg = str(err.value)
    assert "column 'c': missing column" in msg
    assert "column 'extra': unexpected extra column" in msg


def test_frame_with_only_the_target_has_no_features() -> None:
    with pytest.raises(DataValidationError, match="no feature columns"):
        validate_frame(pd.DataFrame({"quality": [1, 2]}), "f.csv", "quality")
