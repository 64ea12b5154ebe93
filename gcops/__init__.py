"""gcops: reclaim disk space from container registries, safely."""

__version__ = "0.1.0"
