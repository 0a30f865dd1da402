"""Alembic's entry point for the prediction store's migrations (see mlrig/predictions/migrate.py).

mlrig runs these itself when it opens a store, on a connection it already holds under the
schema lock; the version lives in a table of its own so MLflow's and Optuna's ``alembic_version``
tables can share the database.
"""

from __future__ import annotations

from alembic import context

config = context.config
version_table = config.attributes["version_table"]

# online only: the re-key revision inspects the store to decide what to copy
context.configure(connection=config.attributes["connection"], version_table=version_table)

with context.begin_transaction():
    context.run_migrations()
