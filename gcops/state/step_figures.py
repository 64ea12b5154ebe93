"""What a step inside the window reports (see gcops.maintenance.in_window for the protocol)."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class StepStatus(Enum):
    PLANNED = "planned"      # prepared; the window has not reached it
    APPLIED = "applied"      # ran to its end inside the window
    FAILED = "failed"        # raised inside the window


@dataclass
class StepFigures:
    """What a step changed: manifests whose revision links went, and the SPEC `tags_deleted` entries."""

    manifests_deleted: int = 0
    tags_deleted: list[dict] = field(default_factory=list)
