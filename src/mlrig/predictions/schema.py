"""The prediction store's tables, as the newest migration revision leaves them.

Kept apart from store.py (the reads and writes) so the schema reads in one place; a change
here needs a revision in migrations/versions (tests/integration/test_store_upgrade.py compares
the two).
"""

from __future__ import annotations

import sqlalchemy as sa

from mlrig.predictions.columns import BLOB, TEXT, TIMESTAMP

metadata = sa.MetaData()

requests = sa.Table(
    "prediction_requests",
    metadata,
    sa.Column("batch_id", sa.String(64), primary_key=True),
    sa.Column("created_at", TIMESTAMP, nullable=False, index=True),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("feature_names", TEXT, nullable=False),  # JSON list
    # little-endian float64, row-major n_rows × len(feature_names): encoding 1,000 rows as
    # JSON cost more than the commit; export decodes it back to columns
    # (JSON rows instead when the model has categorical features; feature_names then says so)
    sa.Column("features", BLOB, nullable=False),
    sa.Column("predictions", BLOB, nullable=False),  # float64 × n_rows
    sa.Column("ids", TEXT, nullable=True),  # JSON list when the client chose ids, else derived
    sa.Column("latency_ms", sa.Float, nullable=False),
    # classifiers: float64 × n_rows × len(classes), row-major, and the class labels (JSON list)
    sa.Column("probabilities", BLOB, nullable=True),
    sa.Column("classes", TEXT, nullable=True),
)

prediction_ids = sa.Table(
    "prediction_ids",
    metadata,
    sa.Column("model_name", sa.String(256), primary_key=True),
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("batch_id", sa.String(64), nullable=False),
    sa.Column("row", sa.Integer, nullable=False),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("model_name", sa.String(256), primary_key=True),
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("actual", sa.Float, nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False),
)

# What `mlrig monitor` concluded, newest last: the server's /monitoring and overview page read
# it here, so serving never computes drift itself.
monitoring_results = sa.Table(
    "monitoring_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("computed_at", TIMESTAMP, nullable=False),
    sa.Column("model_name", sa.String(256), nullable=False, index=True),
    sa.Column("verdict", sa.String(32), nullable=False),
    sa.Column("result", TEXT, nullable=False),  # JSON, as `mlrig monitor --json` prints it
    sa.Column("report_html", TEXT, nullable=True),
)

# Every pass of the closed loop (`mlrig loop`): what it decided and why, newest last. The
# policy reads it back (cool-down, labels since the last retrain); see passes.py.
loop_passes = sa.Table(
    "loop_passes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(256), nullable=False, index=True),
    sa.Column("started_at", TIMESTAMP, nullable=False),
    sa.Column("finished_at", TIMESTAMP, nullable=False),
    sa.Column("trigger", sa.String(32), nullable=False),  # manual | schedule
    sa.Column("retrain", sa.Boolean, nullable=False),  # did the policy decide to retrain
    sa.Column("outcome", sa.String(32), nullable=False),  # see passes.OUTCOMES
    sa.Column("version", sa.String(32), nullable=True),  # the version a retrain registered
    sa.Column("result", TEXT, nullable=False),  # JSON, as `mlrig loop --json` prints it
)

# Leases that keep two passes of the loop (or two retrains of one model) apart across processes
# and machines; locks.py holds and renews them, a crashed holder's lease expires.
locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),  # a fresh token per acquisition
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("purpose", sa.String(256), nullable=False),
    sa.Column("acquired_at", TIMESTAMP, nullable=False),
    sa.Column("expires_at", TIMESTAMP, nullable=False),
)
