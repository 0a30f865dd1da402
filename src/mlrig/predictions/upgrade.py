"""Upgrade a store an older mlrig created: client ids from one global namespace to one per model.

Before, ``prediction_ids`` and ``feedback`` were keyed by id alone; now by (model_name, id).
Each old row gets the model of the request its id points at (a client id through its
``prediction_ids`` row, a generated ``<batch_id>-<row>`` through its batch); a row whose
request is gone keeps model_name '' rather than being dropped. The tables are copied, rebuilt
and refilled in the one transaction that opens the schema (lock_schema: SQLite BEGIN IMMEDIATE,
PostgreSQL transactional DDL under an advisory lock), so a crash or a concurrent opener sees
the old store or the new one, never half of each, and every row survives.
"""

from __future__ import annotations

import sqlalchemy as sa

_OLD = "_mlrig_v1_"  # prefix of the copies the old rows wait in during the upgrade
_SCHEMA_LOCK = 0x6D6C726967  # "mlrig": the PostgreSQL advisory lock openers queue on


def lock_schema(conn: sa.Connection) -> None:
    """Start the transaction that creates or upgrades the schema, holding a lock that makes
    concurrent openers (every server worker, every CLI) take turns: the second finds the
    work done instead of failing on a table the first just created."""
    if conn.dialect.name == "sqlite":  # pysqlite would otherwise run DDL outside a transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")


def upgrade_namespace(
    conn: sa.Connection, requests: sa.Table, prediction_ids: sa.Table, feedback: sa.Table
) -> bool:
    """Re-key ``prediction_ids`` and ``feedback`` by (model_name, id) if they are still keyed
    by id; True when this call did it. Runs in the caller's transaction, which holds
    lock_schema. Raises SQLAlchemy's errors (the store wraps them)."""
    tables = (prediction_ids.name, feedback.name)
    if not _needs_upgrade(sa.inspect(conn), tables):
        return False
    for name in tables:
        conn.exec_driver_sql(f"CREATE TABLE {_OLD}{name} AS SELECT * FROM {name}")
        conn.exec_driver_sql(f"DROP TABLE {name}")
    prediction_ids.create(conn)
    feedback.create(conn)
    conn.exec_driver_sql(
        f'INSERT INTO {prediction_ids.name} (model_name, id, batch_id, "row") '
        f"SELECT COALESCE(r.model_name, ''), o.id, o.batch_id, o.\"row\" "
        f"FROM {_OLD}{prediction_ids.name} o "
        f"LEFT JOIN {requests.name} r ON r.batch_id = o.batch_id"
    )
    conn.exec_driver_sql(
        f"INSERT INTO {feedback.name} (model_name, id, actual, created_at) "
        f"SELECT COALESCE(r.model_name, ''), f.id, f.actual, f.created_at "
        f"FROM {_OLD}{feedback.name} f "
        f"LEFT JOIN {_OLD}{prediction_ids.name} p ON p.id = f.id "
        f"LEFT JOIN {requests.name} r ON r.batch_id = COALESCE(p.batch_id, SUBSTR(f.id, 1, 32))"
    )
    for name in tables:
        conn.exec_driver_sql(f"DROP TABLE {_OLD}{name}")
    return True


def add_missing_columns(conn: sa.Connection, metadata: sa.MetaData) -> None:
    """Add the nullable columns later versions introduced (nothing is dropped or rewritten)."""
    inspector = sa.inspect(conn)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')


def _needs_upgrade(inspector: sa.Inspector, tables: tuple[str, ...]) -> bool:
    present = set(inspector.get_table_names())
    return any(
        name in present and "model_name" not in {c["name"] for c in inspector.get_columns(name)}
        for name in tables
    )
