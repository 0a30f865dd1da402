"""Tables written chunk by chunk: CSV or Parquet chosen by OUTPUT's extension, or CSV on a
stream (stdout); a file is written whole or not at all."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Literal

import pyarrow as pa

from mlrig.errors import ConfigError

Format = Literal["csv", "parquet"]
_OUTPUT_FORMATS: dict[str, tuple[Format, str]] = {
    ".csv": ("csv", ","),
    ".txt": ("csv", ","),
    ".tsv": ("csv", "\t"),
    ".parquet": ("parquet", ""),
    ".pq": ("parquet", ""),
}


def output_format(path: Path | None) -> tuple[Format, str]:
    """(format, CSV separator) chosen by OUTPUT's extension; None = CSV. Raises ConfigError."""
    if path is None:
        return "csv", ","
    found = _OUTPUT_FORMATS.get(path.suffix.lower())
    if found is None:
        raise ConfigError(
            f"output {path}: unknown extension {path.suffix!r} (expected "
            f"{', '.join(sorted(_OUTPUT_FORMATS))})"
        )
    return found


class TableWriter:
    """Writes chunks to OUTPUT (CSV or Parquet by its extension), or CSV to ``stream``.

    A file is written whole or not at all: chunks go to a temporary file beside it, renamed
    to OUTPUT by ``commit``; ``abort`` deletes it, leaving any earlier OUTPUT untouched.
    Chunks are written by a thread while the caller scores the next one (pyarrow formats
    without the GIL); at most one chunk waits. A write error is raised by the next ``write``
    or by ``commit``.
    """

    def __init__(self, path: Path | None, stream: IO[bytes] | None = None) -> None:
        import queue
        import threading

        self.path = path
        self.format, self._sep = output_format(path)
        self._stream = stream
        self._tmp: Path | None = None
        self._writer: Any = None
        self._sink: Any = None
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="mlrig-write", daemon=True)
        self._thread.start()

    def write(self, table: pa.Table) -> None:
        self._raise()
        self._queue.put(table)

    def commit(self) -> None:
        """Finish OUTPUT (after at least one ``write``); raises what a write raised."""
        self._queue.put(None)
        self._thread.join()
        self._raise()
        self._close()
        if self._tmp is not None and self.path is not None:
            umask = os.umask(0)
            os.umask(umask)
            self._tmp.chmod(0o666 & ~umask)  # mkstemp's 0600 is not what a user expects
            os.replace(self._tmp, self.path)
            self._tmp = None
        elif self._stream is not None:
            self._stream.flush()

    def abort(self) -> None:
        """Stop writing and delete the temporary file; never raises."""
        self._error = self._error or _Aborted()
        with contextlib.suppress(Exception):
            while self._thread.is_alive():  # make room for the sentinel, then let it end
                with contextlib.suppress(Exception):
                    self._queue.get_nowait()
                with contextlib.suppress(Exception):
                    self._queue.put_nowait(None)
                self._thread.join(0.05)
        with contextlib.suppress(Exception):
            self._close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def _drain(self) -> None:
        while (table := self._queue.get()) is not None:
            if self._error is not None:
                continue  # aborted or failed: drop, but keep taking until the sentinel
            try:
                if self._writer is None:
                    self._open(table.schema)
                self._writer.write_table(table)
            except OSError as exc:  # a full disk, a folder that cannot be made, a closed pipe
                where = self.path or "stdout"
                self._error = ConfigError(f"output {where}: cannot write ({exc.strerror or exc})")
            except BaseException as exc:
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None and not isinstance(self._error, _Aborted):
            error, self._error = self._error, _Aborted()
            raise error

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._sink is not None:
            self._sink.close()

    def _open(self, schema: pa.Schema) -> None:
        target: Any
        if self.path is None:
            target = self._stream
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            os.close(fd)
            self._tmp = Path(tmp)
            target = self._sink = pa.OSFile(tmp, "wb")  # written by Arrow, outside the GIL
        if self.format == "parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(target, schema)
            return
        import pyarrow.csv as pacsv

        # pyarrow quotes every header name; a plain header reads better and means the same
        line = io.StringIO()
        csv.writer(line, delimiter=self._sep, lineterminator="\n").writerow(schema.names)
        target.write(line.getvalue().encode())
        options = pacsv.WriteOptions(
            include_header=False, delimiter=self._sep, quoting_style="needed"
        )
        self._writer = pacsv.CSVWriter(target, schema, write_options=options)


class _Aborted(Exception):
    """The writer was aborted: later chunks are dropped."""
