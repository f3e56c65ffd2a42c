"""Bearer-token check for the admin API's write endpoints.

The token lives in a mounted Secret that the operator holds too. It is read
from the file on each check (cached by modification time), so rotating the
Secret needs no restart. Without a token file the admin API is read-only:
refusing writes is the only safe default for an endpoint that changes how a
production engine schedules.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

UNAVAILABLE = "the admin token is unavailable on this engine; see the engine's log"
"""What a caller learns when the token file broke: not its path, not why."""


@dataclass(frozen=True, slots=True)
class AuthDecision:
    """The outcome of one check: HTTP status (200 = allowed) and a message safe to return."""

    status: int
    message: str

    @property
    def allowed(self) -> bool:
        return self.status == 200


class AdminTokenError(ValueError):
    """The configured token file cannot be used (missing, unreadable, empty or not one line)."""


def read_token(path: Path) -> str:
    """The token in ``path`` without surrounding whitespace; never echoes the content.

    Whitespace inside (an inner line break) is refused: an HTTP header carries one
    line, so such a token could never authenticate a PUT."""
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise AdminTokenError(f"admin token file {path} is unreadable: {exc.strerror}") from None
    if not token:
        raise AdminTokenError(f"admin token file {path} is empty")
    if any(c.isspace() for c in token):
        raise AdminTokenError(
            f"admin token file {path} has whitespace inside the token (a line break?); "
            "a bearer token is a single word"
        )
    return token


class AdminAuth:
    """Checks ``Authorization: Bearer <token>`` against the token file, in constant time."""

    def __init__(self, token_file: Path | None) -> None:
        self.token_file = token_file
        self._cached: tuple[float, str] | None = None
        if token_file is not None:
            self._token()  # fail at start-up, not on the first PUT

    def check(self, authorization: str | None) -> AuthDecision:
        if self.token_file is None:
            return AuthDecision(
                403,
                "admin writes are disabled: the engine was started without --admin-token-file",
            )
        try:
            expected = self._token()
        except AdminTokenError as exc:
            log.error("admin write refused: %s", exc)
            return AuthDecision(503, UNAVAILABLE)
        scheme, _, presented = (authorization or "").partition(" ")
        ok = hmac.compare_digest(presented.strip().encode(), expected.encode())
        if scheme.lower() != "bearer" or not ok:
            return AuthDecision(401, "missing or invalid bearer token")
        return AuthDecision(200, "ok")

    def _token(self) -> str:
        assert self.token_file is not None
        try:
            mtime = self.token_file.stat().st_mtime
        except OSError as exc:
            raise AdminTokenError(
                f"admin token file {self.token_file} is unreadable: {exc.strerror}"
            ) from None
        if self._cached is None or self._cached[0] != mtime:
            self._cached = (mtime, read_token(self.token_file))
        return self._cached[1]
