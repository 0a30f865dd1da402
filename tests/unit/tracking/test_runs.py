from __future__ import annotations

import importlib.metadata as md

import mlflow.utils.environment as env

from mlrig.tracking.runs import _pins_not_rechecked, pip_requirements


def test_pins_are_the_installed_versions_of_the_model_s_packages() -> None:
    pins = dict(line.split("==") for line in pip_requirements())
    assert {"mlflow", "scikit-learn", "numpy", "pandas"} <= set(pins)
    assert all(md.version(name) == version for name, version in pins.items())


def test_mlflow_s_requirement_check_is_skipped_for_one_save_then_restored() -> None:
    # If MLflow renames the check, saves only get slower again: this test says so.
    check = env.warn_dependency_requirement_mismatches
    with _pins_not_rechecked():
        assert env.warn_dependency_requirement_mismatches is not check
        assert env.warn_dependency_requirement_mismatches(["numpy==0.0.1"]) is None
    assert env.warn_dependency_requirement_mismatches is check
