"""Reading a ``text/csv`` request body: a header row, then one row per record.

Everything Python's ``csv`` module can object to becomes a RequestError naming the line (it
once reached the client as a 500): a field over the module's size limit, an unterminated
quote. Lines may end in LF, CRLF or a bare CR (old spreadsheets); blank lines are skipped, as
pandas does. Every row must have as many fields as the header — a longer row was once silently
cut for categorical models — and every numeric field must be a finite number: ``nan``, ``inf``
or ``1e400`` (which Python's ``float`` reads as infinity) are refused, not predicted.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection
from typing import Any

from mlrig.serving.bad_request import RequestError, finite_msg, type_msg


def read_csv(body: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and, per non-blank row, (line number, fields). Raises RequestError:
    400 for a body that is not UTF-8 CSV with a header, 422 for a row whose width differs."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(
            400, f"text/csv body must be UTF-8: invalid byte at offset {exc.start}"
        ) from exc
    # newline="" lets the csv module see \r, \n and \r\n itself (quoted fields may hold them).
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        header = next(reader, [])
        if not header:
            raise RequestError(400, "text/csv body must start with a header row of feature names")
        for raw in reader:
            if not raw:
                continue
            if len(raw) != len(header):
                record = len(rows)
                raise RequestError(
                    422,
                    f"record {record} (line {reader.line_num}): expected {len(header)} values "
                    f"(one per header column), got {len(raw)}",
                    record,
                )
            rows.append((reader.line_num, raw))
    except csv.Error as exc:
        reason = str(exc)
        if "field larger than field limit" in reason:
            reason = f"a field is longer than {csv.field_size_limit()} characters"
        raise RequestError(400, f"text/csv line {reader.line_num}: {reason}") from exc
    return header, rows


def csv_number(text: str, record: int, line: int, field: str) -> float:
    """``text`` as a finite float, else a 422 naming record, line and field."""
    try:
        value = float(text)
    except ValueError:
        raise RequestError(422, type_msg(record, field, text, line), record, field) from None
    if not math.isfinite(value):
        raise RequestError(422, finite_msg(record, field, text, line), record, field)
    return value


def csv_rows(
    header: list[str], rows: list[tuple[int, list[str]]], categorical: Collection[str]
) -> list[list[Any]]:
    """Rows with numeric fields as floats and categorical ones left as text."""
    numeric = [name not in categorical for name in header]
    out: list[list[Any]] = []
    for i, (line, raw) in enumerate(rows):
        if not categorical:
            try:  # the common case: one comprehension, and a check only if it fails
                values = [float(v) for v in raw]
                if all(math.isfinite(v) for v in values):
                    out.append(values)
                    continue
            except ValueError:
                pass
        out.append(
            [
                csv_number(v, i, line, name) if num else v
                for v, num, name in zip(raw, numeric, header, strict=True)
            ]
        )
    return out
