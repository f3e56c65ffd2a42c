"""The knobs document in force in this engine, and how a new one gets in.

One store per engine process: the admin API reads and replaces it, the
executor subscribes to it. In real mode it also mirrors the document into a
runtime file that the scheduler in vLLM's engine-core process polls between
steps (written atomically, so the scheduler never reads half a document).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..contract.knobs import FieldError, InvalidKnobsError, Knobs, KnobsState, write_knobs
from ..policy import make_policy


def check_policy_buildable(knobs: Knobs) -> None:
    """Refuse a policy this build cannot construct, before anything changes."""
    try:
        make_policy(knobs.policy, knobs)
    except (NotImplementedError, ValueError) as exc:
        raise InvalidKnobsError([FieldError("policy", str(exc))]) from None


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
        return KnobsState.of(self._knobs)

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
            write_knobs(self.mirror_path, knobs)
