"""Chunked table files: reading CSV/Parquet in chunks, and naming a row by its place in the file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from mlrig.data.chunks import open_table, read_chunks
from mlrig.errors import DataSourceError, DataValidationError

TYPES = {"a": pa.float64(), "id": pa.string()}


def _csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_separator_is_sniffed_and_chunks_hold_at_most_n_rows(tmp_path: Path) -> None:
    rows = "".join(f"{i};{i / 2}\n" for i in range(1000))
    with open_table(str(_csv(tmp_path, "id;a\n" + rows))) as table:
        assert (table.format, table.separator, table.columns) == ("csv", ";", ("id", "a"))
        chunks = list(read_chunks(table, 64, TYPES))
    assert [c.num_rows for c in chunks] == [64] * 15 + [40]
    merged = pa.concat_tables(chunks)
    assert merged["id"].type == pa.string() and merged["id"][7].as_py() == "7"
    assert merged["a"].to_pylist()[:3] == [0.0, 0.5, 1.0]


def test_a_row_is_named_by_the_line_an_editor_shows(tmp_path: Path) -> None:
    # a blank line (skipped by the reader) and a quoted line break (one row, two lines)
    text = 'id,a\n1,1.0\n\n"two\nlines",2.0\n3,3.0\n'
    with open_table(str(_csv(tmp_path, text))) as table:
        rows = pa.concat_tables(read_chunks(table, 10, TYPES))
        assert rows["id"].to_pylist() == ["1", "two\nlines", "3"]
        assert [table.where(i) for i in range(3)] == ["line 2", "line 4", "line 6"]


def test_a_value_the_reader_cannot_convert_is_named_by_line_and_column(tmp_path: Path) -> None:
    text = "id,a\n" + "".join(f"{i},{i}\n" for i in range(500)) + "x,abc\n"
    bad = pytest.raises(DataValidationError, match=r"t.csv: line 502, column 'a': 'abc' is not")
    with open_table(str(_csv(tmp_path, text))) as table, bad:
        list(read_chunks(table, 100, TYPES))


def test_a_row_with_too_many_fields_is_named(tmp_path: Path) -> None:
    bad = pytest.raises(DataValidationError, match="line 3: 3 fields, the header has 2")
    with open_table(str(_csv(tmp_path, "id,a\n1,2\n3,4,5\n"))) as table, bad:
        list(read_chunks(table, 100, TYPES))


def test_parquet_is_read_in_row_batches_and_rows_are_counted_from_one(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"a": range(250)}).to_parquet(path)
    with open_table(str(path)) as table:
        assert (table.format, table.size) == ("parquet", 250)
        assert [c.num_rows for c in read_chunks(table, 100, {})] == [100, 100, 50]
        assert table.where(0) == "row 1"


@pytest.mark.parametrize(
    ("text", "message"), [("", "is empty"), ("\x00\x01binary", "binary content")]
)
def test_unreadable_inputs_are_refused_by_name(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataSourceError, match=message), open_table(str(_csv(tmp_path, text))):
        pass
    with pytest.raises(DataSourceError, match=r"nope\.csv: not found"), open_table("nope.csv"):
        pass


def test_quoted_line_breaks_and_separators_survive_any_block_boundary(tmp_path: Path) -> None:
    ids = [f'r{i}\n"x",y' if i % 7 == 0 else f"r{i}" for i in range(300)]
    path = tmp_path / "q.csv"
    pd.DataFrame({"id": ids, "a": range(300)}).to_csv(path, index=False)
    for rows in (1, 5, 64, 1000):  # blocks of a few rows to the whole file
        with open_table(str(path)) as table:
            read = pa.concat_tables(read_chunks(table, rows, TYPES))
        assert read["id"].to_pylist() == ids and read["a"].to_pylist() == list(range(300))
