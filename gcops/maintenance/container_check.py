"""A window step before the GC of a containerised registry: the container is still the one resolved.

Its GC runs by `exec` in that container; a container recreated (new id) or stopped since the instance
was resolved must not be collected, and the window restores.
"""
from __future__ import annotations

from gcops.config import Instance
from gcops.containers.resolve import ensure_same
from gcops.errors import Refused, WindowFailed
from gcops.maintenance.in_window import InWindow
from gcops.state.step_figures import StepFigures, StepStatus


class StillSameContainer:
    """The step protocol of in_window.py: reads only (through the window's deadline-bound host)."""

    name = "container_check"

    def __init__(self, instance: Instance):
        self.instance = instance
        self.status = StepStatus.PLANNED
        self.figures = StepFigures()

    def apply(self, window: InWindow) -> None:
        try:
            ensure_same(self.instance, window.host)
        except Refused as exc:      # recreated, stopped, or the engine stopped answering: the window restores
            raise WindowFailed(f"{exc}; GC not run") from None
