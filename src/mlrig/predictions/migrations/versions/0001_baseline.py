"""Baseline: the oldest store mlrig shipped with one record per request.

Ids and feedback are keyed by the id alone (one namespace for every model). Revision 0002
re-keys them per model; 0003 adds what later versions introduced.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mlrig.predictions.columns import BLOB, TEXT, TIMESTAMP

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_requests",
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("model_name", sa.String(256), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("feature_names", TEXT, nullable=False),
        sa.Column("features", BLOB, nullable=False),
        sa.Column("predictions", BLOB, nullable=False),
        sa.Column("ids", TEXT, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
    )
    op.create_index("ix_prediction_requests_created_at", "prediction_requests", ["created_at"])
    op.create_table(
        "prediction_ids",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("actual", sa.Float, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("mlrig never drops prediction data; restore a backup instead")
