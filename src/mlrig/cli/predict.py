"""``mlrig predict``: score a CSV or Parquet file (path or URL) in chunks with the served model."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlrig.cli.options import ConfigOpt, HomeOpt, QuietOpt, quiet_libraries, settings_from

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mlrig.data.chunks import TableFile

DEFAULT_CHUNK_ROWS = 100_000


def predict_command(
    input: Annotated[
        str,
        typer.Argument(
            metavar="INPUT", help="CSV (any separator) or Parquet: a path or an http(s) URL."
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write here: .csv/.tsv/.txt (CSV) or .parquet/.pq (Parquet). Default: CSV to stdout.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="NAME@ALIAS or NAME/VERSION (default: MODEL_NAME@champion)."
        ),
    ] = None,
    log: Annotated[
        bool,
        typer.Option(
            "--log/--no-log",
            help="Write every scored row to the prediction store (endpoint 'batch'), so "
            "`mlrig monitor` sees it; without an id column the output gets the logged ids.",
        ),
    ] = False,
    chunk_rows: Annotated[
        int,
        typer.Option("--chunk-rows", min=1, help="Rows per chunk (memory ∝ this, not the file)."),
    ] = DEFAULT_CHUNK_ROWS,
    separator: Annotated[
        str | None, typer.Option("--separator", "-s", help="CSV separator (default: sniffed).")
    ] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option("--keep", "-k", help="Copy this non-feature column to the output (repeat)."),
    ] = None,
    quiet: QuietOpt = False,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Score INPUT with a registered model, chunk by chunk (constant memory).

    Output columns: the input's id column ("id" or "*_id", not a feature), --keep columns,
    "prediction", and for a classifier "probability" (binary) or "probability_<class>".
    Rows are validated as the server validates requests: a bad value stops the run with exit
    code 3, naming its CSV line (header = line 1) or Parquet row, column and value. OUTPUT is
    then not written (it is written whole or not at all; stdout keeps the chunks already
    printed), and with --log nothing of the bad row's chunk or later is logged — earlier
    chunks stay logged, and the message says how many rows.
    """
    from mlrig.data.chunks import open_table
    from mlrig.data.table_writer import TableWriter, output_format
    from mlrig.errors import DataValidationError
    from mlrig.serving.batch_model import load_predictor
    from mlrig.serving.batch_scoring import BadColumns, ChunkScorer

    quiet_libraries()
    output_format(output)  # an unknown extension fails before any model is loaded
    settings = settings_from(config, home)
    with open_table(input, separator) as table:
        predictor = load_predictor(settings, model)
        try:
            scorer = ChunkScorer(
                predictor, table.columns, settings.serving.id_fields, keep or (), log=log
            )
        except BadColumns as exc:
            raise DataValidationError(f"data file {table.name}: {exc}") from exc
        store = _open_store(settings) if log else None
        writer = TableWriter(output, None if output else sys.stdout.buffer)
        started = time.perf_counter()
        try:
            done, logged = _score_file(table, scorer, writer, store, chunk_rows, quiet)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        finally:
            if store is not None:
                store.close()
    seconds = time.perf_counter() - started
    if not quiet:
        where = output or "stdout"
        note = f", {logged:,} logged" if log else ""
        typer.echo(
            f"{done:,} rows scored by {predictor.name} v{predictor.version} in {seconds:.2f} s "
            f"({done / max(seconds, 1e-9):,.0f} rows/s{note}) → {where}",
            err=True,
        )


def _score_file(
    table: TableFile, scorer: Any, writer: Any, store: Any, chunk_rows: int, quiet: bool
) -> tuple[int, int]:
    """Score, log (when ``store``), write, chunk by chunk: (rows scored, rows logged)."""
    from mlrig.data.chunks import read_chunks
    from mlrig.errors import DataSourceError, DataValidationError
    from mlrig.serving.batch_scoring import BadCell

    done = logged = 0
    try:
        with _progress(table, quiet) as advance:
            for chunk in read_chunks(table, chunk_rows, scorer.read_types(), advance):
                try:
                    scored = scorer.score(chunk)
                except BadCell as exc:
                    raise _bad_row(table, done, exc) from exc
                if store is not None and scored.batch is not None:
                    store.insert_batches([scored.batch])  # durable before it is written out
                    logged += chunk.num_rows
                writer.write(scored.table)
                done += chunk.num_rows
    except DataValidationError as exc:
        if not logged:
            raise
        raise DataValidationError(f"{exc} ({logged:,} earlier rows were logged)") from exc
    if done == 0:
        raise DataSourceError(f"data file {table.name}: has a header but no rows")
    return done, logged


def _bad_row(table: TableFile, before: int, exc: Any) -> Exception:
    from mlrig.errors import DataValidationError

    where = "" if exc.row is None else f"{table.where(before + exc.row)}, "
    return DataValidationError(
        f"data file {table.name}: {where}column {exc.column!r}: {exc.problem}"
    )


def _open_store(settings: Any) -> Any:
    from mlrig.predictions.store import open_store

    return open_store(settings.predictions_url)


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(table: TableFile, quiet: bool) -> Any:
    """A rich progress bar on stderr (bytes for CSV, rows for Parquet); none when stderr is
    not a terminal or with --quiet. Yields the ``advance(n)`` callback, or None."""
    import contextlib

    if quiet or not sys.stderr.isatty():
        return _NoProgress()

    @contextlib.contextmanager
    def bar() -> Iterator[Callable[[int], None]]:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        amount = DownloadColumn() if table.format == "csv" else MofNCompleteColumn()
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            amount,
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as progress:
            task = progress.add_task("scoring", total=table.size)
            yield lambda n: progress.advance(task, n)

    return bar()
