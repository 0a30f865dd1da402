"""Create or upgrade the prediction store's schema with Alembic, under a cross-process lock.

The revisions live in ``migrations/versions`` (shipped in the wheel) and the version in
``mlrig_predictions_version``: MLflow and Optuna keep their own ``alembic_version`` and may
share the team's database. A store an older mlrig created has no version table; which revision
it matches is read from its tables (detect_revision), stamped, then upgraded like any other.

Every opener (each server worker, each CLI) runs ``upgrade`` inside schema_lock, so processes
opening one store together take turns: the first migrates, the others find it at head.
SQLite (BEGIN IMMEDIATE) and PostgreSQL (transactional DDL under an advisory lock) migrate in
one transaction; MySQL commits each DDL statement, so there the lock (GET_LOCK) only keeps
openers apart and an interrupted revision resumes where it stopped (see 0002).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from importlib import resources

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from mlrig.errors import StoreUnavailableError

VERSION_TABLE = "mlrig_predictions_version"
_SCHEMA_LOCK = 0x6D6C726967  # "mlrig": the PostgreSQL advisory lock openers queue on
_MYSQL_LOCK = "mlrig_predictions_schema"
_MYSQL_LOCK_WAIT = 600  # seconds an opener waits for another's migration on MySQL
SUPPORTED = ("sqlite", "postgresql", "mysql", "mariadb")

# What revision 0003 adds: an unversioned store that has all of it matches 0003.
_LATER_COLUMNS = {"prediction_requests": ("probabilities", "classes")}
_LATER_TABLES = ("monitoring_results", "loop_passes", "locks")


def _scripts() -> str:
    return str(resources.files("mlrig.predictions") / "migrations")


def _config(conn: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", _scripts())
    config.attributes["connection"] = conn
    config.attributes["version_table"] = VERSION_TABLE
    return config


@functools.cache
def head() -> str:
    """The newest revision this mlrig ships."""
    found = ScriptDirectory(_scripts()).get_current_head()
    assert found is not None
    return found


def current(conn: sa.Connection) -> str | None:
    """The revision the store is stamped with (None: unversioned or empty)."""
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def detect_revision(conn: sa.Connection) -> str | None:
    """The revision an unversioned store matches, read from its tables; None when it holds
    none of mlrig's tables (a new store: every revision runs)."""
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names())
    if not present & {"prediction_requests", "prediction_ids", "feedback", "_mlrig_v1_feedback"}:
        return None
    if any(name.startswith("_mlrig_v1_") for name in present):
        return "0001"  # a re-key (0002) interrupted on MySQL: it resumes from its copies
    for name in ("prediction_ids", "feedback"):
        if name in present and "model_name" not in {c["name"] for c in inspector.get_columns(name)}:
            return "0001"
    for table, columns in _LATER_COLUMNS.items():
        have = {c["name"] for c in inspector.get_columns(table)} if table in present else set()
        if not set(columns) <= have:
            return "0002"
    return "0002" if not set(_LATER_TABLES) <= present else "0003"


def upgrade(conn: sa.Connection) -> tuple[str | None, str]:
    """Bring the store on ``conn`` to head, in the caller's transaction (which holds
    schema_lock); returns (revision before, revision after). Raises SQLAlchemy's errors."""
    before = current(conn)
    if before == head():  # every open but the first: no need to load the revisions
        return before, before
    if before is None:
        found = detect_revision(conn)
        if found is not None:
            command.stamp(_config(conn), found)
        before = found
    command.upgrade(_config(conn), "head")
    return before, head()


@contextlib.contextmanager
def schema_lock(conn: sa.Connection) -> Iterator[None]:
    """Hold the lock that makes concurrent openers take turns, around a transaction the caller
    commits inside the block: SQLite BEGIN IMMEDIATE, PostgreSQL pg_advisory_xact_lock (freed
    at commit), MySQL/MariaDB GET_LOCK (a session lock, released here)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":  # pysqlite would otherwise run DDL outside a transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield
    elif dialect == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
        yield
    elif dialect in ("mysql", "mariadb"):
        got = conn.exec_driver_sql(f"SELECT GET_LOCK('{_MYSQL_LOCK}', {_MYSQL_LOCK_WAIT})").scalar()
        if got != 1:
            raise StoreUnavailableError(
                f"prediction store: another process held the schema lock for "
                f"{_MYSQL_LOCK_WAIT} s (GET_LOCK('{_MYSQL_LOCK}'))"
            )
        try:
            yield
        finally:
            try:
                conn.rollback()  # nothing left after the caller's commit; a failed block's rest
                conn.exec_driver_sql(f"SELECT RELEASE_LOCK('{_MYSQL_LOCK}')")
                conn.commit()
            except sa.exc.SQLAlchemyError:
                conn.invalidate()  # closing the session frees its lock; never pool it held
    else:
        raise StoreUnavailableError(
            f"prediction store: backend {dialect!r} is not supported "
            f"(expected one of {', '.join(SUPPORTED)})"
        )
