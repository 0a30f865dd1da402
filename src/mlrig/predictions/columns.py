"""Column types the store and its migrations share, sized for every backend.

SQLAlchemy's generic ``LargeBinary`` and ``Text`` become MySQL's BLOB and TEXT, 64 KB each: a
1,000-row request's features or an HTML drift report overflow them. ``DateTime`` becomes
DATETIME without fractions, so requests logged in the same second would lose their order.
Each type here is the generic one with a MySQL/MariaDB variant (LONGBLOB, LONGTEXT,
DATETIME(6)); SQLite and PostgreSQL get the generic type unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

_MYSQL = ("mysql", "mariadb")

BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), *_MYSQL)
TEXT = sa.Text().with_variant(mysql.LONGTEXT(), *_MYSQL)
# aware on PostgreSQL; naive UTC on SQLite and MySQL (the store converts, see store.py)
TIMESTAMP = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), *_MYSQL)
