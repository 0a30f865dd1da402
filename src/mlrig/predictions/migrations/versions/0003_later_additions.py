"""What later versions added, none of it touching existing rows: classifiers' probabilities
and classes (nullable columns), and the monitoring results, loop passes and leases tables.

Each step runs only if its column or table is missing: stores that predate versioning were
created with any subset of these (see migrate.detect_revision).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from mlrig.predictions.columns import BLOB, TEXT, TIMESTAMP

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def added_columns() -> dict[str, list[sa.Column[Any]]]:
    """The nullable columns this revision adds, by table."""
    return {
        "prediction_requests": [
            sa.Column("probabilities", BLOB, nullable=True),
            sa.Column("classes", TEXT, nullable=True),
        ]
    }


def added_tables() -> list[sa.Table]:
    """The tables this revision creates."""
    meta = sa.MetaData()
    monitoring = sa.Table(
        "monitoring_results",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("computed_at", TIMESTAMP, nullable=False),
        sa.Column("model_name", sa.String(256), nullable=False, index=True),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("result", TEXT, nullable=False),
        sa.Column("report_html", TEXT, nullable=True),
    )
    passes = sa.Table(
        "loop_passes",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(256), nullable=False, index=True),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("retrain", sa.Boolean, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("version", sa.String(32), nullable=True),
        sa.Column("result", TEXT, nullable=False),
    )
    locks = sa.Table(
        "locks",
        meta,
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("host", sa.String(256), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("purpose", sa.String(256), nullable=False),
        sa.Column("acquired_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
    )
    return [monitoring, passes, locks]


def upgrade() -> None:
    conn = op.get_bind()
    inspector = sa.inspect(conn)
    for table, columns in added_columns().items():
        present = {c["name"] for c in inspector.get_columns(table)}
        for column in columns:
            if column.name not in present:
                op.add_column(table, column)
    existing = set(inspector.get_table_names())
    for new in added_tables():
        if new.name not in existing:
            new.create(conn)


def downgrade() -> None:
    raise NotImplementedError("mlrig never drops prediction data; restore a backup instead")
