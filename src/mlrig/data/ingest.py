"""Read a tabular dataset from a path or an http(s) URL into a pandas DataFrame.

CSV with any separator (given or sniffed) and Parquet are accepted; anything else is refused
with a message naming the source. The raw bytes are hashed so every run records its lineage.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from mlrig.errors import DataSourceError, DataValidationError
from mlrig.redact import redact_text, redact_url

if TYPE_CHECKING:
    import pandas as pd

EMBEDDED_DATASETS = {"wine-red": "winequality-red.csv", "wine-white": "winequality-white.csv"}
DEFAULT_DATASET = "wine-red"
URL_TIMEOUT_S = 30.0
_PARQUET_MAGIC = b"PAR1"
_CSV_SUFFIXES = {".csv", ".tsv", ".txt", ".data", ".psv"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}


@dataclass(frozen=True)
class LoadedTable:
    """A dataset as read: the frame plus where it came from and what its bytes hash to."""

    frame: pd.DataFrame
    source: str
    format: str
    sha256: str

    @property
    def digest(self) -> str:
        return self.sha256[:16]


def embedded_path(name: str = DEFAULT_DATASET) -> Path:
    """Filesystem path of a dataset shipped inside the package (see datasets/README.md)."""
    return Path(str(resources.files("mlrig.data") / "datasets" / EMBEDDED_DATASETS[name]))


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def load_table(source: str | Path | None = None, separator: str | None = None) -> LoadedTable:
    """Read ``source`` (None = embedded red wine). ``LoadedTable.source`` is ``source`` with
    any credential masked. Raises DataSourceError naming the (redacted) source, and
    DataValidationError for duplicated column names."""
    if source is None:
        source = embedded_path()
    url = str(source)
    # Credentials in a URL (a password, a presigned token) fetch the data and go no further:
    # the source every message, tag and lineage record shows is the redacted one.
    name = redact_url(url)
    raw = _fetch(url) if is_url(url) else _read_file(Path(url))
    if not raw.strip():
        raise DataSourceError(f"data file {name}: is empty (expected a CSV or Parquet table)")
    fmt = _detect_format(name, raw)
    frame = _parse_parquet(name, raw) if fmt == "parquet" else _parse_csv(name, raw, separator)
    if frame.shape[0] == 0:
        raise DataSourceError(f"data file {name}: has a header but no rows")
    return LoadedTable(frame, name, fmt, hashlib.sha256(raw).hexdigest())


def _read_file(path: Path) -> bytes:
    if not path.exists():
        raise DataSourceError(f"data file {path}: not found")
    if path.is_dir():
        raise DataSourceError(f"data file {path}: is a directory, expected a CSV or Parquet file")
    return path.read_bytes()


def _fetch(url: str) -> bytes:
    import httpx

    shown = redact_url(url)
    try:
        response = httpx.get(url, timeout=URL_TIMEOUT_S, follow_redirects=True)
    except httpx.TimeoutException:
        raise DataSourceError(f"data URL {shown}: timed out after {URL_TIMEOUT_S:.0f} s") from None
    except httpx.HTTPError as exc:
        # httpx's message may quote the URL, credentials and all; the chained exception too.
        raise DataSourceError(
            f"data URL {shown}: cannot be fetched ({redact_text(str(exc))})"
        ) from None
    if response.status_code != 200:
        raise DataSourceError(f"data URL {shown}: HTTP {response.status_code}, expected 200")
    return response.content


def _detect_format(name: str, raw: bytes) -> str:
    suffix = Path(name.split("?", 1)[0]).suffix.lower()
    if raw[:4] == _PARQUET_MAGIC or suffix in _PARQUET_SUFFIXES:
        return "parquet"
    if suffix in _CSV_SUFFIXES or not suffix:
        return "csv"
    try:
        raw[:65536].decode("utf-8")
    except UnicodeDecodeError:
        raise DataSourceError(
            f"data file {name}: is not CSV or Parquet (binary content, suffix {suffix!r})"
        ) from None
    if b"\x00" in raw[:65536] or raw.lstrip()[:1] in (b"{", b"["):
        raise DataSourceError(f"data file {name}: is not CSV or Parquet (suffix {suffix!r})")
    return "csv"


def _parse_parquet(name: str, raw: bytes) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_parquet(io.BytesIO(raw))
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise DataSourceError(f"data file {name}: is not a readable Parquet file ({exc})") from exc


def _parse_csv(name: str, raw: bytes, separator: str | None) -> pd.DataFrame:
    import pandas as pd

    if b"\x00" in raw[:65536]:
        raise DataSourceError(f"data file {name}: is not CSV or Parquet (binary content)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"data file {name}: is not UTF-8 text, expected CSV") from exc
    sep = separator or sniff_separator(text)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep)
        header = pd.read_csv(
            io.StringIO(text), sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise DataSourceError(
            f"data file {name}: is not valid CSV with separator {sep!r} ({exc})"
        ) from exc
    # pandas renames a repeated header ("a", "a" → "a", "a.1"): two columns would train under
    # names the file does not have, and the second "a" would never match a request's "a".
    names = [str(v) for v in header.iloc[0].tolist()]
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        raise DataValidationError(
            f"data file {name}: duplicated column name(s) {', '.join(map(repr, repeated))} "
            "in the header (each column needs a unique name)"
        )
    return frame


def sniff_separator(text: str) -> str:
    """Guess the CSV separator from the first lines; comma when nothing else is consistent."""
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","
