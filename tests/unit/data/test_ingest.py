from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from mlrig.data.ingest import embedded_path, load_table, sniff_separator
from mlrig.errors import DataSourceError


def test_embedded_red_wine_is_the_default_and_matches_the_published_checksum() -> None:
    assert (
        hashlib.md5(embedded_path().read_bytes()).hexdigest() == "d96920a7b2fb991e04194abf10dc4901"
    )
    table = load_table()
    assert table.frame.shape == (1599, 12)
    assert "quality" in table.frame.columns
    assert table.format == "csv"
    assert len(table.digest) == 16


def test_attribution_ships_with_the_data() -> None:
    readme = (embedded_path().parent / "README.md").read_text()
    assert "Cortez" in readme and "CC BY 4.0" in readme


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_csv_separator_is_detected(tmp_path: Path, sep: str) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame({"a b": [1.5, 2.5, 3.5], "c": [1, 2, 3], "y": [0, 1, 0]}).to_csv(
        path, sep=sep, index=False
    )
    assert sniff_separator(path.read_text()) == sep
    frame = load_table(path).frame
    assert list(frame.columns) == ["a b", "c", "y"]
    assert frame["a b"].tolist() == [1.5, 2.5, 3.5]


def test_explicit_separator_wins(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text("a;b\n1;2\n3;4\n")
    assert list(load_table(path, separator=";").frame.columns) == ["a", "b"]
    assert list(load_table(path, separator=",").frame.columns) == ["a;b"]


def test_parquet_is_read_by_content_and_suffix(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": [3, 4]})
    frame.to_parquet(tmp_path / "d.parquet")
    (tmp_path / "d.parquet").rename(tmp_path / "no_suffix")
    table = load_table(tmp_path / "no_suffix")
    assert table.format == "parquet"
    pd.testing.assert_frame_equal(table.frame, frame)


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"", "empty.csv", "is empty"),
        (b"   \n\n", "blank.csv", "is empty"),
        (b"a,b,quality\n", "header.csv", "has a header but no rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "image.png", "is not CSV or Parquet"),
        (b'{"a": 1}', "data.json", "is not CSV or Parquet"),
        (b"PAR1 not really parquet", "broken.parquet", "is not a readable Parquet file"),
    ],
)
def test_unreadable_files_name_the_file(
    tmp_path: Path, content: bytes, name: str, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataSourceError, match=message) as err:
        load_table(path)
    assert name in str(err.value)


def test_missing_file_and_directory_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match=r"nope.csv: not found"):
        load_table(tmp_path / "nope.csv")
    with pytest.raises(DataSourceError, match="is a directory"):
        load_table(tmp_path)
