"""Tables too large for memory, read in chunks: CSV (any separator, sniffed) or Parquet from a
path or an http(s) URL (writing them: table_writer.py).

Memory stays flat with the file's size: a URL is streamed to a temporary file (never held in
memory), CSV is read by pyarrow's streaming reader, Parquet by ``ParquetFile.iter_batches``.
Where a row sits in its file — the line a text editor shows for CSV (header = line 1), the
row number for Parquet — is worked out only when a row must be named: it rescans the file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import pyarrow as pa

from mlrig.data.ingest import URL_TIMEOUT_S, is_url, sniff_separator
from mlrig.errors import DataSourceError, DataValidationError
from mlrig.redact import redact_text, redact_url

Format = Literal["csv", "parquet"]
_PARQUET_MAGIC = b"PAR1"
_SAMPLE = 64 * 1024


@dataclass(frozen=True)
class TableFile:
    """A local table file (a URL's download lives in a temporary file) and how to read it."""

    path: Path
    name: str  # what messages show: the path, or the URL with credentials masked
    format: Format
    separator: str  # CSV only
    columns: tuple[str, ...]
    size: int  # progress total: bytes (CSV) or rows (Parquet)

    def where(self, row: int) -> str:
        """``row`` (0-based, among the data rows) as a person finds it in the file: the CSV
        line (header = line 1; blank lines and quoted line breaks counted), the Parquet row
        (counting from 1)."""
        if self.format == "parquet":
            return f"row {row + 1}"
        return f"line {self._csv_line(row)}"

    def _csv_line(self, row: int) -> int:
        with self.path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
            reader = csv.reader(f, delimiter=self.separator)
            next(reader, None)
            start, k = reader.line_num + 1, 0
            for record in reader:
                if record:  # pyarrow skips empty lines too
                    if k == row:
                        return start
                    k += 1
                start = reader.line_num + 1
        return start


@contextlib.contextmanager
def open_table(source: str, separator: str | None = None) -> Iterator[TableFile]:
    """The table at ``source`` (a path or an http(s) URL; a URL is downloaded to a temporary
    file, deleted on exit). Raises DataSourceError naming the (redacted) source."""
    name = redact_url(source)
    if not is_url(source):
        path = Path(source).expanduser()
        if not path.exists():
            raise DataSourceError(f"data file {name}: not found")
        if path.is_dir():
            raise DataSourceError(f"data file {name}: is a directory, expected CSV or Parquet")
        yield _describe(path, name, separator)
        return
    fd, tmp = tempfile.mkstemp(prefix="mlrig-predict-", suffix=Path(name.split("?")[0]).suffix)
    os.close(fd)
    try:
        _download(source, name, Path(tmp))
        yield _describe(Path(tmp), name, separator)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _download(url: str, name: str, dest: Path) -> None:
    import httpx

    try:
        with (
            httpx.stream("GET", url, timeout=URL_TIMEOUT_S, follow_redirects=True) as response,
            dest.open("wb") as out,
        ):
            if response.status_code != 200:
                raise DataSourceError(f"data URL {name}: HTTP {response.status_code}, expected 200")
            for block in response.iter_bytes(1 << 20):
                out.write(block)
    except httpx.TimeoutException:
        raise DataSourceError(f"data URL {name}: timed out after {URL_TIMEOUT_S:.0f} s") from None
    except httpx.HTTPError as exc:  # its message may quote the URL with its credentials
        raise DataSourceError(
            f"data URL {name}: cannot be fetched ({redact_text(str(exc))})"
        ) from None


def _describe(path: Path, name: str, separator: str | None) -> TableFile:
    with path.open("rb") as f:
        head = f.read(_SAMPLE)
    if not head.strip():
        raise DataSourceError(f"data file {name}: is empty (expected a CSV or Parquet table)")
    if head[:4] == _PARQUET_MAGIC:
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
            raise DataSourceError(
                f"data file {name}: is not a readable Parquet file ({exc})"
            ) from exc
        columns = tuple(meta.schema_arrow.names)
        return TableFile(path, name, "parquet", "", columns, meta.metadata.num_rows)
    if b"\x00" in head:
        raise DataSourceError(f"data file {name}: is not CSV or Parquet (binary content)")
    text = head.decode("utf-8-sig", errors="replace")
    sep = separator or sniff_separator(text)
    header = next(csv.reader(text.splitlines()[:1], delimiter=sep), [])
    if not header or not any(header):
        raise DataSourceError(f"data file {name}: has no header line")
    return TableFile(path, name, "csv", sep, tuple(header), path.stat().st_size)


def read_chunks(
    table: TableFile,
    rows: int,
    types: Mapping[str, pa.DataType],
    progress: Callable[[int], None] | None = None,
) -> Iterator[pa.Table]:
    """Tables of ``rows`` rows (the last one fewer), in file order. CSV columns named in ``types``
    are read as those types (text elsewhere is inferred). ``progress`` is told bytes read
    (CSV) or rows read (Parquet). Raises DataValidationError naming the line and column of a
    value the reader cannot convert, DataSourceError for an unreadable file.

    The next chunk is read in a thread while the caller works on this one (pyarrow parses
    without the GIL): at most two chunks are held beyond the caller's.
    """
    if table.format == "parquet":
        batches = _parquet_batches(table, rows, progress)
    else:
        batches = _csv_batches(table, rows, types, progress)
    return _read_ahead(_exactly(batches, rows))


def _exactly(batches: Iterator[pa.RecordBatch | pa.Table], rows: int) -> Iterator[pa.Table]:
    """Tables of exactly ``rows`` rows (the last one fewer) from batches of any size, without
    copying: chunk k is rows k*rows to (k+1)*rows - 1 of the file, whatever the reader's
    blocks were."""
    pending: list[pa.Table] = []
    held = 0
    for batch in batches:
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        start = 0
        while start < batch.num_rows:
            piece = batch.slice(start, rows - held)
            pending.append(piece)
            held += piece.num_rows
            start += piece.num_rows
            if held == rows:
                yield pa.concat_tables(pending)
                pending, held = [], 0
    if held:
        yield pa.concat_tables(pending)


_DONE = object()


def _read_ahead(chunks: Iterator[pa.Table]) -> Iterator[pa.Table]:
    import queue
    import threading

    ready: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        ready.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put(exc)

    thread = threading.Thread(target=produce, name="mlrig-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            ready.get_nowait()  # unblock a producer waiting to put
        thread.join()


def _parquet_batches(
    table: TableFile, rows: int, progress: Callable[[int], None] | None
) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    try:
        for batch in pq.ParquetFile(table.path).iter_batches(batch_size=rows):
            if progress is not None:
                progress(batch.num_rows)
            yield batch
    except (OSError, pa.ArrowException) as exc:
        raise DataSourceError(f"data file {table.name}: cannot be read ({exc})") from exc


def _csv_batches(
    table: TableFile,
    rows: int,
    types: Mapping[str, pa.DataType],
    progress: Callable[[int], None] | None,
) -> Iterator[pa.Table]:
    """Blocks of whole records (about ``rows`` rows each), each parsed by pyarrow.

    pyarrow's own streaming reader reads ahead of its consumer without bound (≈ the whole
    file when scoring is slower than parsing: RSS +200 MB on a 190 MB file), so the file is
    cut here, at record ends, and one block at a time is parsed. Columns not given in
    ``types`` keep the types inferred from the first block, so every chunk has one schema.
    """
    import pyarrow.csv as pacsv

    with table.path.open("rb") as f:
        head = f.read(_SAMPLE)
    lines = head.splitlines() or [head]
    per_row = len(head) // len(lines) + 1
    size = min(max(rows * per_row, 16 * max(map(len, lines))), 256 << 20)
    parse = pacsv.ParseOptions(delimiter=table.separator, newlines_in_values=True)
    read = pacsv.ReadOptions(column_names=list(table.columns), use_threads=True)
    fixed = dict(types)
    try:
        with table.path.open("rb") as f:
            carry = _skip_header(f, table)
            while True:
                data = f.read(size)
                if progress is not None:
                    progress(len(data))
                buf = carry + data
                cut = len(buf) if not data else _last_record_end(buf)
                if cut < 0:  # no record ends in this block: read on
                    carry = buf
                    continue
                piece, carry = buf[:cut], buf[cut:]
                if piece.strip():
                    convert = pacsv.ConvertOptions(
                        column_types=fixed, null_values=[""], quoted_strings_can_be_null=True
                    )
                    parsed = pacsv.read_csv(io.BytesIO(piece), read, parse, convert)
                    if len(fixed) < len(table.columns):  # an all-empty column: text
                        fixed = {
                            n: pa.string() if pa.types.is_null(t) else t
                            for n, t in zip(parsed.column_names, parsed.schema.types, strict=True)
                        }
                        parsed = parsed.cast(pa.schema(list(fixed.items())))
                    yield parsed
                if not data:
                    return
    except pa.ArrowInvalid as exc:
        raise _located(table, types, exc) from exc


def _skip_header(f: IO[bytes], table: TableFile) -> bytes:
    """Read past the header record (and a UTF-8 BOM); returns what was read beyond it."""
    buf = b""
    while True:
        data = f.read(_SAMPLE)
        buf += data
        end = _first_record_end(buf)
        if end >= 0 or not data:
            return buf[end:] if end >= 0 else b""


def _first_record_end(buf: bytes) -> int:
    """Index just past the first newline outside quotes (RFC 4180: an even number of quote
    characters before it), or -1."""
    pos = buf.find(b"\n")
    while pos >= 0:
        if buf.count(b'"', 0, pos) % 2 == 0:
            return pos + 1
        pos = buf.find(b"\n", pos + 1)
    return -1


def _last_record_end(buf: bytes) -> int:
    """Index just past the last newline outside quotes in ``buf`` (which starts at a record
    start), or -1. Without quote characters it is the last newline."""
    quotes = buf.count(b'"')
    pos = buf.rfind(b"\n")
    if not quotes:
        return pos + 1 if pos >= 0 else -1
    after = 0  # quote characters after ``pos``
    end = len(buf)
    while pos >= 0:
        after += buf.count(b'"', pos, end)
        if (quotes - after) % 2 == 0:
            return pos + 1
        end = pos
        pos = buf.rfind(b"\n", 0, pos)
    return -1


def _located(table: TableFile, types: Mapping[str, pa.DataType], exc: Exception) -> Exception:
    """The reader's error, with the line and column found by rescanning the file (the reader
    says neither for a conversion error)."""
    floats = [c for c, t in types.items() if pa.types.is_floating(t)]
    with table.path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f, delimiter=table.separator)
        header = next(reader, [])
        index = [(c, header.index(c)) for c in floats if c in header]
        start = reader.line_num + 1
        for record in reader:
            if record and len(record) != len(header):
                return DataValidationError(
                    f"data file {table.name}: line {start}: {len(record)} fields, the header "
                    f"has {len(header)} (separator {table.separator!r})"
                )
            for name, j in index:
                value = record[j] if record else ""
                if record and value.strip() != "" and not _is_number(value):
                    return DataValidationError(
                        f"data file {table.name}: line {start}, column {name!r}: "
                        f"{value[:40]!r} is not a number"
                    )
            start = reader.line_num + 1
    return DataValidationError(f"data file {table.name}: is not valid CSV ({exc})")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
