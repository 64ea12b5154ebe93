"""Retention: GitLab-style cleanup policies applied by gcops before GC, in the same run.

policy.py decides (pure), listing.py reads the storage, step.py plans before the
window and applies inside it.
"""
from gcops.retention.step import RetentionRefused, RetentionStep

__all__ = ["RetentionRefused", "RetentionStep"]
