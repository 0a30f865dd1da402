"""One pass of the closed loop: monitor → policy → (retrain → fair gate → promote).

(Interface stub; the pass is being built.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlrig.config import Settings


@dataclass(frozen=True)
class LoopResult:
    model: str
    trigger: str  # manual | schedule
    decision: str  # retrain | skip
    reason: str
    steps: list[dict[str, Any]] = field(default_factory=list)  # the decision trail
    version: str | None = None
    promoted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def loop_pass(settings: Settings, trigger: str = "manual") -> LoopResult:
    """Run one pass of the loop for ``settings.tracking.model_name``."""
    raise NotImplementedError
