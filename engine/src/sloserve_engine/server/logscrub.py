"""Keep credentials out of the access log: query strings are never logged.

The admin token belongs in the ``Authorization`` header, but a client that puts
it in the query string (``?token=...``) must not leave it in uvicorn's access
log, where it would outlive any rotation of the Secret.
"""

from __future__ import annotations

import logging

REDACTED = "<redacted>"
ACCESS_LOGGER = "uvicorn.access"


def scrub_target(target: str) -> str:
    """``/path?anything`` → ``/path?<redacted>``: a bare ``?SECRET`` has no key to keep."""
    path, sep, _ = target.partition("?")
    return f"{path}?{REDACTED}" if sep else target


class QueryScrubber(logging.Filter):
    """Rewrites the request target of uvicorn access records (args: client, method, target,
    http version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], scrub_target(args[2]), *args[3:])
        return True


def install_access_log_scrubber() -> None:
    """Idempotent: add the scrubber to uvicorn's access logger once."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, QueryScrubber) for f in logger.filters):
        logger.addFilter(QueryScrubber())
