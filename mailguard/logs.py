"""structlog set-up: one JSON object per line on stdout, for journald, Docker or a SIEM."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog


def add_pid(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Which worker process wrote the line (with `workers = N`, N of them share the log)."""
    event["pid"] = os.getpid()
    return event


def configure(level: str = "info") -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            add_pid,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        # One write per line (print() makes two, each a syscall with PYTHONUNBUFFERED).
        logger_factory=structlog.WriteLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
    # aiosmtpd logs every command at INFO, with addresses: keep library chatter to warnings.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("mail.log").setLevel(logging.WARNING)
