"""What the host scripts said, as typed outcomes: pure parsers of their exit code and key=value lines.

Each parser takes (exit code, printed text) and never raises; the outcome says
what happened in the terms gcops decides on. Tested with recorded outputs.
"""
from __future__ import annotations

from dataclasses import dataclass

from gcops.hostside import EXIT_CONFIG_CHANGED, EXIT_LEFTOVER, EXIT_LOCK_LOST, EXIT_LOCKED, EXIT_REFUSED
from gcops.hostside.kv import as_float, as_int, parse_kv, tail  # noqa: F401 - tail: the scripts' error line

# curl exit codes that mean TLS could not be set up (bad or unknown certificate, handshake)
TLS_CURL_CODES = {"35", "51", "53", "54", "58", "59", "60", "64", "66", "77", "80", "82", "83", "90", "91"}


@dataclass(frozen=True)
class ScriptOutcome:
    """A host script's exit code, its key=value lines and its whole output."""

    code: int
    kv: dict[str, str]
    text: str

    @classmethod
    def parse(cls, code: int, text: str):
        return cls(code, parse_kv(text), text)


class EnterOutcome(ScriptOutcome):

    @property
    def entered(self) -> bool:
        return self.code == 0

    @property
    def changed_nothing(self) -> bool:
        """The script refused before its commit point: lock, leftover, config changed, or no room to record."""
        return self.code in (EXIT_LOCKED, EXIT_LEFTOVER, EXIT_CONFIG_CHANGED, EXIT_REFUSED, 2)

    @property
    def locked_by(self) -> str | None:
        return self.kv.get("lock_held") if self.code == EXIT_LOCKED else None

    @property
    def reason(self) -> str:
        if self.code == EXIT_LOCKED:
            return f"held by {self.kv.get('lock_held') or 'another run'}"
        if self.code == EXIT_LEFTOVER:
            return f"changes left by {self.kv.get('leftover')}; run `gcops recover`"
        if self.code == EXIT_CONFIG_CHANGED:
            return "the registry config changed since preflight; try again"
        if "refused" in self.kv:
            return self.kv["refused"]
        return tail(self.text)

    @property
    def window_start(self) -> float | None:
        return as_float(self.kv.get("window_start"))

    @property
    def ready(self) -> float | None:
        return as_float(self.kv.get("ready"))

    @property
    def restarted(self) -> str:
        """"yes": every registry process serving the config was replaced during enter; "no"; "unknown"."""
        return self.kv.get("registry_restarted", "unknown")

    @property
    def fresh(self) -> str:
        """"yes": every registry process started after the config was last written."""
        return self.kv.get("registry_fresh", "unknown")


parse_enter = EnterOutcome.parse


@dataclass(frozen=True)
class CheckOutcome:
    write_status: str | None       # HTTP status of the write probe ("000": no answer); None in stop mode
    read_status: str
    curl_rc: str | None

    @property
    def refuses_writes(self) -> bool:
        return self.write_status == "405"

    @property
    def needs_credentials(self) -> bool:
        return self.write_status in ("401", "403")

    @property
    def answering(self) -> bool:
        return self.read_status in ("200", "401")

    @property
    def tls_problem(self) -> bool:
        return self.curl_rc in TLS_CURL_CODES


def parse_check(text: str) -> CheckOutcome:
    kv = parse_kv(text)
    return CheckOutcome(kv.get("write_probe"), kv.get("read_probe", "000"), kv.get("curl_rc"))


class CollectOutcome(ScriptOutcome):
    @property
    def lock_lost(self) -> bool:
        return self.code == EXIT_LOCK_LOST

    @property
    def started(self) -> bool:
        return "gc_start" in self.kv

    @property
    def exit_code(self) -> int | None:
        """The collector's own exit code; None when it did not report one (it did not run to its end)."""
        return as_int(self.kv.get("gc_exit"))

    @property
    def seconds(self) -> float | None:
        a, b = as_float(self.kv.get("gc_start")), as_float(self.kv.get("gc_end"))
        return round(b - a, 3) if a is not None and b is not None else None


parse_collect = CollectOutcome.parse


class LeaveOutcome(ScriptOutcome):
    @property
    def not_ours(self) -> bool:
        return self.kv.get("not_ours") == "yes"

    @property
    def restored(self) -> bool:
        """Restored and verified: by this leave, or earlier by the watchdog, gc.sh or recover (marker gone)."""
        if self.not_ours:
            return self.kv.get("marker") == "absent"
        return self.code == 0 and (self.kv.get("restored") == "yes" or self.kv.get("already_restored") == "yes")

    @property
    def window_end(self) -> float | None:
        return as_float(self.kv.get("window_end"))

    @property
    def probe_after_gc(self) -> str | None:
        return self.kv.get("probe_after_gc")

    @property
    def reason(self) -> str:
        if self.not_ours:
            return "another run or the watchdog holds the node, and its changes are still there"
        for key, what in (("config_restore_failed", "could not put the original config back"),
                          ("config_differs", "the config still differs from the original"),
                          ("not_answering", "the registry does not answer after the restart"),
                          ("still_read_only", "the registry still refuses writes"),
                          ("expected_read_only", "the registry no longer refuses writes (it was read-only before)"),
                          ("gc_still_running", "the GC process could not be stopped"),
                          ("restore_busy", "another restore is still running"),
                          ("write_probe_failed", "the write probe after the restart got no good answer"),
                          ("params_unreadable", "the host's record of this run is unreadable")):
            if key in self.kv or self.kv.get("failed") == key:
                return what
        return f"restore failed (leave.sh exited {self.code}): {tail(self.text)}"


parse_leave = LeaveOutcome.parse
