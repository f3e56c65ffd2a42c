"""Request-body schemas in the OpenAPI document of the engine's own endpoints.

The completions, chat and knobs handlers read the raw body themselves (size
limit first, parsing off the loop when large), so FastAPI cannot infer their
schemas; this module puts the pydantic models they parse with into
``/openapi.json``, so clients and the API fuzzer see every documented field.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from ..contract.knobs import Knobs
from .chat import ChatRequest
from .completions import CompletionRequest

BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("/v1/completions", "post"): CompletionRequest,
    ("/v1/chat/completions", "post"): ChatRequest,
    ("/sloserve/knobs", "put"): Knobs,
}
"""(path, method) → the model its handler validates the body with."""


def add_bodies(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with a JSON request body on every operation of :data:`BODIES` it has."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for (path, method), model in BODIES.items():
        operation = doc.get("paths", {}).get(path, {}).get(method)
        if operation is None:
            continue
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    return doc


def document_bodies(app: FastAPI) -> None:
    """Serve ``/openapi.json`` with the request bodies of :data:`BODIES`."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
            app.openapi_schema = add_bodies(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
