"""Which names carry a record id rather than a feature: one rule for training (an id column is
never trained on), serving (a request's id field, a V2 id input) and batch scoring."""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable, Sequence

# fnmatch patterns, case-sensitive: the seeds send "id" (ml-pipes) and "ride_id" (the zoomcamp).
DEFAULT_ID_FIELDS = ("id", "*_id")


def id_names(
    names: Iterable[str], features: Collection[str], patterns: Sequence[str] = DEFAULT_ID_FIELDS
) -> list[str]:
    """The names that match one of ``patterns`` and are not among ``features`` (a feature named
    ``store_id`` stays a feature), in order. Pure."""
    return [
        n for n in names if n not in features and any(fnmatch.fnmatchcase(n, p) for p in patterns)
    ]
