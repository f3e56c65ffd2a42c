"""The admin-token Secret: created once per service and never rotated by reconciles.

The token is an input (the caller draws it) so this stays pure; the operator creates the
Secret only when it is absent and otherwise reads the token back.
"""

from __future__ import annotations

import secrets
from typing import Any

from sloserve_engine.contract.pod import ADMIN_TOKEN_KEY

from .target import Target


def new_token() -> str:
    return secrets.token_urlsafe(32)


def render(target: Target, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": target.metadata(target.admin_secret),
        "type": "Opaque",
        "stringData": {ADMIN_TOKEN_KEY: token},
    }
