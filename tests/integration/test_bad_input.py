"""Bad data through `mlrig run`: one clear message naming file and column, non-zero exit, and
the registry untouched (no new run, no new version)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli


def _store_counts(home: Path) -> tuple[int, int]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    versions = client.search_model_versions("name='wine-quality'")
    return len(runs), len(versions)


def _wine(tmp_path: Path) -> pd.DataFrame:
    from mlrig.data.ingest import embedded_path

    return pd.read_csv(embedded_path(), sep=";").head(200)


CASES = {
    "missing_target": (
        lambda f: f.drop(columns=["quality"]),
        [],
        ["target column 'quality' is missing"],
    ),
    "nan": (
        lambda f: f.assign(alcohol=f["alcohol"].where(f.index != 5)),
        [],
        ["column 'alcohol'", "NaN", "line 7"],
    ),
    "non_numeric": (
        lambda f: f.assign(pH=f["pH"].astype(str).where(f.index != 3, "acid")),
        [],
        ["column 'pH'", "non-numeric", "'acid'"],
    ),
    "constant_target": (
        lambda f: f.assign(quality=5),
        [],
        ["column 'quality'", "target is constant"],
    ),
    "extra_column": (
        lambda f: f.assign(colour="red"),
        ["features"],
        ["column 'colour': unexpected extra column"],
    ),
    "missing_feature": (
        lambda f: f.drop(columns=["density"]),
        ["features"],
        ["column 'density': missing column"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_data_is_refused_and_nothing_is_registered(
    case: str, tmp_path: Path, trained_home: Path
) -> None:
    mutate, opts, expected = CASES[case]
    before = _store_counts(trained_home)
    frame = _wine(tmp_path)
    path = tmp_path / f"{case}.csv"
    mutate(frame).to_csv(path, sep=";", index=False)
    args = ["run", "--home", str(trained_home), "--data", str(path)]
    if opts:
        features = [c for c in frame.columns if c != "quality"]
        (tmp_path / "strict.toml").write_text(f"[data]\nfeatures = {json.dumps(features)}\n")
        args += ["--config", str(tmp_path / "strict.toml")]
    done = run_cli(*args)
    assert done.returncode == 3, done.stdout + done.stderr
    assert str(path) in done.stderr
    for text in expected:
        assert text in done.stderr
    assert "Traceback" not in done.stderr
    assert _store_counts(trained_home) == before


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "is empty"),
        ("wine.xlsx", b"PK\x03\x04\x14\x00\x06\x00binary\x00zip", "is not CSV or Parquet"),
        ("missing.csv", None, "not found"),
    ],
)
def test_unreadable_file_is_refused_and_nothing_is_registered(
    name: str, content: bytes | None, expected: str, tmp_path: Path, trained_home: Path
) -> None:
    before = _store_counts(trained_home)
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    done = run_cli("run", "--home", str(trained_home), "--data", str(path))
    assert done.returncode == 3
    assert f"data file {path}: {expected}" in done.stderr
    assert _store_counts(trained_home) == before


def test_bad_config_exits_2_naming_the_field(tmp_path: Path, trained_home: Path) -> None:
    before = _store_counts(trained_home)
    done = run_cli("run", "--home", str(trained_home), "--l1-ratio", "3")
    assert done.returncode == 2
    assert "train.l1_ratio" in done.stderr
    assert _store_counts(trained_home) == before
