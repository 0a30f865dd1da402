"""Ids per model: ``prediction_ids`` and ``feedback`` re-keyed by (model_name, id), rows kept.

Each old row gets the model of the request its id points at (a client id through its
``prediction_ids`` row, a generated ``<batch_id>-<row>`` through its batch); a row whose
request is gone keeps model_name '' rather than being dropped. The old rows wait in
``_mlrig_v1_*`` copies while the tables are rebuilt. On SQLite and PostgreSQL all of it is one
transaction; MySQL commits each DDL statement, so this revision also resumes from any step an
interrupted run reached (the copies are dropped last, feedback's first).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mlrig.predictions.columns import TIMESTAMP

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_OLD = "_mlrig_v1_"
_TABLES = ("prediction_ids", "feedback")


def _new_tables() -> tuple[sa.Table, sa.Table]:
    meta = sa.MetaData()
    ids = sa.Table(
        "prediction_ids",
        meta,
        sa.Column("model_name", sa.String(256), primary_key=True),
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
    )
    feedback = sa.Table(
        "feedback",
        meta,
        sa.Column("model_name", sa.String(256), primary_key=True),
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("actual", sa.Float, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    return ids, feedback


def _tables(conn: sa.Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


def _keyed_by_id(conn: sa.Connection, name: str) -> bool:
    return "model_name" not in {c["name"] for c in sa.inspect(conn).get_columns(name)}


def upgrade() -> None:
    conn = op.get_bind()
    quote = conn.dialect.identifier_preparer.quote
    for name in _TABLES:
        copy = _OLD + name
        present = _tables(conn)
        if name in present and _keyed_by_id(conn, name):
            if copy in present:  # a copy cut short; the original is intact: copy again
                op.drop_table(copy)
            op.execute(f"CREATE TABLE {quote(copy)} AS SELECT * FROM {quote(name)}")
            op.drop_table(name)
        elif name in present and copy in present:  # a refill cut short: redo it
            op.drop_table(name)
    present = _tables(conn)
    ids, feedback = _new_tables()
    for table in (ids, feedback):
        if table.name not in present:
            table.create(conn)
    requests = sa.table("prediction_requests", sa.column("batch_id"), sa.column("model_name"))
    model = sa.func.coalesce(requests.c.model_name, "")
    old_ids = sa.table(_OLD + ids.name, sa.column("id"), sa.column("batch_id"), sa.column("row"))
    if old_ids.name in present:
        rows = sa.select(model, old_ids.c.id, old_ids.c.batch_id, old_ids.c.row).select_from(
            old_ids.outerjoin(requests, requests.c.batch_id == old_ids.c.batch_id)
        )
        op.execute(ids.insert().from_select(["model_name", "id", "batch_id", "row"], rows))
    old_feedback = sa.table(
        _OLD + feedback.name, sa.column("id"), sa.column("actual"), sa.column("created_at")
    )
    if old_feedback.name in present:
        # the id's batch: its prediction_ids row (old copy, or the re-keyed table when an
        # interrupted run already dropped the copy), else the generated id's first 32 chars
        by_id = old_ids if old_ids.name in present else ids
        batch = sa.func.coalesce(by_id.c.batch_id, sa.func.substr(old_feedback.c.id, 1, 32))
        rows = sa.select(
            model, old_feedback.c.id, old_feedback.c.actual, old_feedback.c.created_at
        ).select_from(
            old_feedback.outerjoin(by_id, by_id.c.id == old_feedback.c.id).outerjoin(
                requests, requests.c.batch_id == batch
            )
        )
        op.execute(
            feedback.insert().from_select(["model_name", "id", "actual", "created_at"], rows)
        )
        op.drop_table(old_feedback.name)
    if old_ids.name in present:
        op.drop_table(old_ids.name)


def downgrade() -> None:
    raise NotImplementedError("mlrig never drops prediction data; restore a backup instead")
