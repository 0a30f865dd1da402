"""Writing chunks: the format follows OUTPUT's extension, and OUTPUT is written whole or not
at all."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from mlrig.data.table_writer import TableWriter, output_format
from mlrig.errors import ConfigError


def test_the_output_format_follows_the_extension() -> None:
    assert output_format(None) == ("csv", ",")
    assert output_format(Path("o.tsv")) == ("csv", "\t")
    assert output_format(Path("o.PARQUET"))[0] == "parquet"
    with pytest.raises(ConfigError, match=r"unknown extension '.json'"):
        output_format(Path("o.json"))


def test_output_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    out.write_text("earlier\n")
    chunk = pa.table({"id": ["a,b"], "prediction": [1.5]})
    writer = TableWriter(out)
    writer.write(chunk)
    writer.abort()  # a bad row later: the earlier OUTPUT stays, no temporary file is left
    assert out.read_text() == "earlier\n" and list(tmp_path.iterdir()) == [out]
    writer = TableWriter(out)
    writer.write(chunk)
    writer.write(chunk)
    writer.commit()
    assert out.read_text() == 'id,prediction\n"a,b",1.5\n"a,b",1.5\n'
    stream = io.BytesIO()
    to_stdout = TableWriter(None, stream)
    to_stdout.write(chunk)
    to_stdout.commit()
    assert stream.getvalue().startswith(b"id,prediction\n")
    parquet = TableWriter(tmp_path / "o.parquet")
    parquet.write(chunk)
    parquet.commit()
    assert pd.read_parquet(tmp_path / "o.parquet")["prediction"].tolist() == [1.5]


def test_an_output_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    writer = TableWriter(blocked / "o.csv")  # a folder that cannot be made: a file is there
    writer.write(pa.table({"prediction": [1.0]}))
    with pytest.raises(ConfigError, match=r"output .*/file/o\.csv: cannot write"):
        writer.commit()
