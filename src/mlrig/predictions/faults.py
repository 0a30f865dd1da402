"""Store faults as the store's own error, described without the data they carried.

A driver's error text can quote what was bound to the statement (PostgreSQL's
``DETAIL: Key (id)=(…) already exists``, SQLAlchemy's ``[parameters: …]`` and ``[SQL: …]``),
i.e. client ids and features. What we raise, log or print names the error class, its SQLSTATE
when the driver gives one, and the first line of the driver's message with quoted text
replaced: enough to tell a full disk from a refused login, nothing a client sent.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import sqlalchemy as sa

from mlrig.errors import StoreUnavailableError

_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|\([^)]*\)=\([^)]*\)")
_MAX_REASON = 160


def describe(exc: BaseException) -> str:
    """``Class[SQLSTATE]: reason`` for a store fault, with no statement, parameters or values."""
    orig = getattr(exc, "orig", None) or exc
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None) or str(orig)
    lines = [ln for ln in primary.splitlines() if ln.strip()]
    reason = lines[0] if lines else ""
    # SQLAlchemy appends the statement and its parameters after the driver's message
    reason = reason.split("[SQL:", 1)[0].split("[parameters:", 1)[0].strip()
    reason = _QUOTED.sub("…", reason)
    if len(reason) > _MAX_REASON:
        reason = reason[: _MAX_REASON - 1] + "…"
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    name = type(orig).__name__ + (f"[{code}]" if code else "")
    return f"{name}: {reason}" if reason else name


def fault(what: str, exc: BaseException) -> StoreUnavailableError:
    """The error to raise ``from exc`` when the store could not ``what`` (e.g. "store feedback")."""
    return StoreUnavailableError(f"prediction store: cannot {what} ({describe(exc)})")


@contextlib.contextmanager
def store_faults(what: str) -> Iterator[None]:
    """Turn SQLAlchemy's errors inside the block into StoreUnavailableError; anything else (a
    bug) propagates as itself."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise fault(what, exc) from exc
