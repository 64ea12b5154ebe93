"""structlog set-up: one event per step, to stderr, console or JSON lines. Secrets never logged."""
from __future__ import annotations

import logging
import sys

import structlog

SECRET_KEYS = ("password", "passphrase", "token", "secret")


def _drop_secrets(logger, method, event_dict):
    for key in list(event_dict):
        if any(word in key.lower() for word in SECRET_KEYS):
            event_dict[key] = "***"
    return event_dict


class _StderrLogger:
    """Writes each line to whatever sys.stderr is *now*: while the live progress view is up, rich
    redirects sys.stderr so log lines print above the view instead of through it."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def configure(fmt: str = "console", verbosity: int = 0) -> None:
    """fmt: "console" | "json"; verbosity: -1 quiet (warnings), 0 info, 1 debug."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    renderer = (structlog.processors.JSONRenderer() if fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info if fmt == "json" else structlog.processors.StackInfoRenderer(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *args: _StderrLogger(),
        cache_logger_on_first_use=False,
    )
