"""The one error model of gcops: a root, `GcopsError`, and a few kinds that say what the caller does.

Every exception gcops raises on purpose is one of these kinds (or a subclass
naming a more precise case). Each action (check, plan, run, dry-run, recover,
report) catches `GcopsError` per instance and reports it against that instance;
anything else that escapes is a bug, shown as such by the CLI's last resort.

    GcopsError
      UsageError     bad input the user fixes (config, playbook, schedule); exit 2, nothing touched
      Refused        a guard said no before anything changed (preflight, retention, lock held)
      HostError      a host or a service could not be used or failed a command (SSH, HTTP, S3, Redis)
      ParseError     output or a file gcops cannot understand (registry config, measurement, listings)
      StateError     gcops' own state cannot be used (history, journal, its shipped scripts)
      WindowFailed   the window went wrong after something changed; every entered node is left
      Cancelled      SIGINT/SIGTERM asked the work to stop; every entered node is left

A guard that cannot decide raises (Refused, or the kind of what failed): it
never lets the run through.
"""
from __future__ import annotations


class GcopsError(Exception):
    """Root of every error gcops raises on purpose; the message is one line for the user."""


class UsageError(GcopsError):
    """Bad input (config, playbook, options): the user fixes it; nothing was touched."""


class Refused(GcopsError):
    """A guard said no before anything changed: nothing was touched."""


class LockHeld(Refused):
    """Another gcops run holds the lock on a node (exit 75)."""


class HostError(GcopsError):
    """A host or a service could not be used, or a command on it failed."""


class ParseError(GcopsError):
    """Output or a file gcops cannot understand; a figure it could not read is this, never 0."""


class StateError(GcopsError):
    """gcops' own state (history, journal, shipped host scripts) cannot be used."""


class WindowFailed(GcopsError):
    """The window cannot go on (or went wrong) after a change; the caller leaves every entered node."""


class Cancelled(GcopsError):
    """SIGINT/SIGTERM asked running work to stop; the caller restores what it changed."""
