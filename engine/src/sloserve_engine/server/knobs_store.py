"""The knobs document in force in this engine, and how a new one gets in.

One store per engine process: the admin API reads and replaces it, the
executor subscribes to it. In real mode it also mirrors the document into a
runtime file that the scheduler in vLLM's engine-core process polls between
steps (written atomically, so the scheduler never reads half a document).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..knobs import Knobs, KnobsState
from ..policy import make_policy


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in a knobs document, located by its wire (camelCase) field path."""

    field: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class InvalidKnobsError(ValueError):
    """A knobs document that cannot be applied; ``errors`` name the fields."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic errors as (field path, message); document-level errors are named ``(document)``."""
    return [
        FieldError(".".join(str(p) for p in err["loc"]) or "(document)", err["msg"])
        for err in exc.errors()
    ]


def parse_knobs(raw: str | bytes) -> Knobs:
    """Validate a JSON knobs document; raises :class:`InvalidKnobsError` naming each bad field."""
    try:
        return Knobs.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidKnobsError(field_errors(exc)) from None


def load_knobs_file(path: Path) -> Knobs:
    """The knobs a pod starts from (the mounted ConfigMap); errors say which file and field."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidKnobsError([FieldError(str(path), f"unreadable: {exc.strerror}")]) from None
    try:
        return parse_knobs(raw)
    except InvalidKnobsError as exc:
        located = [FieldError(f"{path}: {e.field}", e.message) for e in exc.errors]
        raise InvalidKnobsError(located) from None


def check_policy_buildable(knobs: Knobs) -> None:
    """Refuse a policy this build cannot construct, before anything changes."""
    try:
        make_policy(knobs.policy, knobs.to_policy_knobs())
    except (NotImplementedError, ValueError) as exc:
        raise InvalidKnobsError([FieldError("policy", str(exc))]) from None


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory and rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


Listener = Callable[[Knobs], None]


class KnobsStore:
    """The document in force; replacing it validates, persists, then notifies listeners."""

    def __init__(
        self,
        initial: Knobs,
        *,
        validate: Callable[[Knobs], None] = check_policy_buildable,
        mirror_path: Path | None = None,
    ) -> None:
        self._validate = validate
        self.mirror_path = mirror_path
        self._listeners: list[Listener] = []
        validate(initial)
        self._mirror(initial)
        self._knobs = initial

    def state(self) -> KnobsState:
        return KnobsState(revision=self._knobs.revision(), knobs=self._knobs)

    @property
    def knobs(self) -> Knobs:
        return self._knobs

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def replace(self, knobs: Knobs) -> KnobsState:
        """Make ``knobs`` the document in force; a document equal to the current one is a no-op."""
        if knobs.revision() == self._knobs.revision():
            return self.state()
        self._validate(knobs)
        self._mirror(knobs)  # first: a failed write leaves the old document in force everywhere
        self._knobs = knobs
        for listener in self._listeners:
            listener(knobs)
        return self.state()

    def _mirror(self, knobs: Knobs) -> None:
        if self.mirror_path is not None:
            write_atomically(self.mirror_path, knobs.canonical_json() + "\n")


def knobs_json(state: KnobsState) -> dict[str, Any]:
    """The wire form of a state (camelCase), as GET and PUT return it."""
    return state.model_dump(mode="json", by_alias=True)
