"""The prediction and feedback store (SQLAlchemy: SQLite or PostgreSQL, group commit)."""
