from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from mlrig.training.plots import DPI, FIGSIZE_IN, classification_plots, regression_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED_SIZE = (round(FIGSIZE_IN[0] * DPI), round(FIGSIZE_IN[1] * DPI))


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which the PNG spec puts first."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    crc = struct.unpack(">I", data[16 + length : 20 + length])[0]
    assert zlib.crc32(data[12 : 16 + length]) == crc
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _assert_pngs(figures: dict[str, bytes], keys: set[str]) -> None:
    assert set(figures) == keys
    for name, data in figures.items():
        assert _png_size(data) == EXPECTED_SIZE, name
        assert data.endswith(b"IEND\xaeB`\x82"), name


def _classification_data(n_classes: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y = rng.integers(0, n_classes, size=n)
    logits = rng.normal(size=(n, n_classes)) + 2.0 * np.eye(n_classes)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def test_regression_plots_render_every_figure_as_png_of_the_figure_size() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    figures = regression_plots(
        y, y + rng.normal(scale=0.3, size=200), ["a", "b", "c"], np.array([0.5, -2.0, 0.1])
    )
    _assert_pngs(figures, {"predicted_vs_actual.png", "residuals.png", "feature_importance.png"})


def test_regression_plots_omit_importance_chart_without_importances() -> None:
    y = np.linspace(0.0, 1.0, 50)
    _assert_pngs(regression_plots(y, y[::-1]), {"predicted_vs_actual.png", "residuals.png"})


def test_binary_classification_plots_render_with_string_labels() -> None:
    y, proba = _classification_data(2)
    labels = np.array(["no", "yes"])
    figures = classification_plots(labels[y], proba, ["no", "yes"], ["f1", "f2"], [0.3, 0.7])
    _assert_pngs(
        figures,
        {"roc_curve.png", "ks_curve.png", "confusion_matrix.png", "feature_importance.png"},
    )


def test_multiclass_classification_plots_render_one_vs_rest() -> None:
    y, proba = _classification_data(3)
    figures = classification_plots(y, proba, [0, 1, 2])
    _assert_pngs(figures, {"roc_curve.png", "ks_curve.png", "confusion_matrix.png"})


def test_class_absent_from_y_true_gives_no_curve_and_no_warning() -> None:
    y, proba = _classification_data(3)
    y[y == 2] = 0  # filterwarnings=error turns sklearn's UndefinedMetricWarning into a failure
    figures = classification_plots(y, proba, [0, 1, 2])
    _assert_pngs(figures, {"roc_curve.png", "ks_curve.png", "confusion_matrix.png"})


def test_importance_chart_with_30_features_renders_top_20() -> None:
    rng = np.random.default_rng(3)
    names = [f"feature_with_a_rather_long_name_{i:02d}" for i in range(30)]
    figures = regression_plots(
        rng.normal(size=40),
        rng.normal(size=40),
        names,
        rng.normal(size=30),
        importance_kind="coefficients",
    )
    _assert_pngs(figures, {"predicted_vs_actual.png", "residuals.png", "feature_importance.png"})


def test_importances_not_aligned_with_feature_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="3 importances for 2 feature names"):
        regression_plots([1.0, 2.0], [1.0, 2.0], ["a", "b"], [1.0, 2.0, 3.0])


def test_proba_columns_must_match_classes() -> None:
    y, proba = _classification_data(3)
    with pytest.raises(ValueError, match="expected"):
        classification_plots(y, proba, [0, 1])


def test_identical_inputs_give_identical_bytes() -> None:
    y, proba = _classification_data(2)
    assert classification_plots(y, proba, [0, 1]) == classification_plots(y, proba, [0, 1])


def test_importing_the_module_does_not_import_matplotlib() -> None:
    code = "import mlrig.training.plots, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
