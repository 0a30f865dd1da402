"""Store faults are described by class, SQLSTATE and reason, never by the values bound."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from mlrig.errors import StoreUnavailableError
from mlrig.predictions.faults import describe, store_faults


def _real_sqlite_error() -> sa.exc.DBAPIError:
    """A genuine IntegrityError from SQLite through SQLAlchemy, parameters and all."""
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id TEXT PRIMARY KEY, secret REAL)")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO t VALUES (?, ?)", [("ride-secret-7", 123.456), ("ride-secret-7", 9.75)]
            )
    except sa.exc.DBAPIError as exc:
        assert "ride-secret-7" in str(exc)  # what used to reach the log verbatim
        return exc
    raise AssertionError("the duplicate key was accepted")


def test_a_real_integrity_error_is_described_without_its_parameters() -> None:
    text = describe(_real_sqlite_error())
    assert text.startswith("IntegrityError")
    assert "UNIQUE constraint failed" in text
    assert "ride-secret-7" not in text and "123.456" not in text and "INSERT" not in text


def test_quoted_values_and_key_details_are_redacted() -> None:
    exc = sqlite3.DataError('invalid input syntax for type double precision: "abc-secret"')
    assert "abc-secret" not in describe(exc)
    exc2 = sqlite3.IntegrityError("Key (id)=(k-secret) already exists")
    assert "k-secret" not in describe(exc2)
    assert len(describe(sqlite3.OperationalError("x" * 10_000))) < 200


def test_store_faults_wraps_sqlalchemy_errors_and_lets_bugs_through() -> None:
    error = _real_sqlite_error()
    wrapped = pytest.raises(StoreUnavailableError, match=r"cannot store feedback \(IntegrityError")
    with wrapped, store_faults("store feedback"):
        raise error
    # a bug stays a bug, not a "store unavailable"
    with pytest.raises(ZeroDivisionError), store_faults("store feedback"):
        _ = 1 / 0
