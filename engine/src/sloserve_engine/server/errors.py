"""One error body for every answer the engine server gives: OpenAI's (and vLLM's).

``{"error": {"message", "type", "param", "code"}}`` lets a client (the ``openai``
package, ``vllm bench serve``, the operator) parse any refusal with one parser,
including the ones FastAPI produces on its own (unknown route 404, wrong method
405, unparsable request 422, uncaught exception 500).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    413: "RequestTooLargeError",
    429: "RateLimitError",
    422: "UnprocessableEntityError",
    503: "ServiceUnavailableError",
}


class APIError(ValueError):
    """A request the engine cannot serve (4xx) or an engine that failed (5xx); the message
    tells the client why and ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status
        self.slo_class: str | None = None
        """The request's SLO class, once its SLO was parsed (labels the refusal)."""


def error_body(message: str, status: int, param: str | None = None) -> dict[str, Any]:
    kind = _TYPES.get(status, "InternalServerError" if status >= 500 else "BadRequestError")
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def error_response(exc: APIError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        error_body(str(exc), exc.status, exc.param), status_code=exc.status, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route FastAPI's own error answers through :func:`error_body`."""

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse(
            error_body(str(exc.detail), exc.status_code),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first["loc"] if p != "body")
        return JSONResponse(
            error_body(f"invalid request: {field}: {first['msg']}", 422, field or None),
            status_code=422,
        )

    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return JSONResponse(
            error_body(f"internal error: {type(exc).__name__}", 500), status_code=500
        )

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, internal_error)
