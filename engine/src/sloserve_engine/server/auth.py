"""Bearer-token check for the admin API's write endpoints.

The token lives in a mounted Secret that the operator holds too. It is read
from the file on each check (cached by modification time), so rotating the
Secret needs no restart. Without a token file the admin API is read-only:
refusing writes is the only safe default for an endpoint that changes how a
production engine schedules.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class AuthDecision:
    """The outcome of one check: HTTP status (200 = allowed) and a message safe to return."""

    status: int
    message: str

    @property
    def allowed(self) -> bool:
        return self.status == 200


class AdminTokenError(ValueError):
    """The configured token file cannot be used (missing, unreadable or empty)."""


def read_token(path: Path) -> str:
    """The token in ``path`` without surrounding whitespace; never echoes the content."""
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise AdminTokenError(f"admin token file {path} is unreadable: {exc.strerror}") from None
    if not token:
        raise AdminTokenError(f"admin token file {path} is empty")
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
            return AuthDecision(503, str(exc))
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
