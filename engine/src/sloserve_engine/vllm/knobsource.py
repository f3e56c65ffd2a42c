"""Live knobs for the engine core: where the knob document comes from and how it is read back.

The scheduler runs inside vLLM's EngineCore process (a child of ``vllm
serve``), so the engine server hands knobs over through a file it rewrites
atomically (temp file + ``os.replace``): the scheduler ``stat``s it at the
start of every step and applies a changed document before planning that step.
After applying, it writes the :class:`~sloserve_engine.knobs.KnobsState` it
now runs with to the status file, which is how the server reads the applied
revision back. Both paths come from the environment (inherited by the engine
core) or from ``--additional-config '{"sloserve": {...}}'``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ..knobs import Knobs, KnobsState

log = logging.getLogger(__name__)

KNOBS_FILE_ENV = "SLOSERVE_KNOBS_PATH"
"""Path of the live knobs JSON (the ``Knobs`` wire document); polled every step."""
KNOBS_STATUS_FILE_ENV = "SLOSERVE_KNOBS_STATUS_PATH"
"""Where the engine core writes the applied ``KnobsState`` (default: ``<knobs file>.applied``)."""
POLICY_ENV = "SLOSERVE_POLICY"
"""Policy name used until a knobs document names one (a document without ``policy`` included)."""
PROFILE_ENV = "SLOSERVE_PROFILE"
"""Cost-model profile the policies plan with (``policy.costmodel.cost_model_for``)."""
ADDITIONAL_CONFIG_KEY = "sloserve"
"""Key of sloserve's section in vLLM's ``additional_config``."""


class KnobsSourceError(ValueError):
    """A knob configuration that cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class KnobsConfig:
    """Where the scheduler's knobs come from (resolved once, at scheduler construction)."""

    initial: Knobs
    """Knobs in force until the file says otherwise."""
    knobs_file: Path | None = None
    """Live file to poll; ``None`` disables polling (knobs then change only by RPC)."""
    status_file: Path | None = None
    """Where the applied ``KnobsState`` is written; ``None`` writes nothing."""
    profile: str | None = None
    """Cost-model profile for the policies; ``None`` uses ``make_policy``'s default."""


def resolve_knobs_config(
    additional_config: Mapping[str, object] | None, environ: Mapping[str, str]
) -> KnobsConfig:
    """Resolve the knob sources; ``additional_config["sloserve"]`` wins over the environment.

    Its keys are ``knobs`` (inline document), ``knobs_file``, ``status_file`` and
    ``profile``. A knobs file present at start-up wins over inline knobs.
    """
    section = (additional_config or {}).get(ADDITIONAL_CONFIG_KEY) or {}
    if not isinstance(section, Mapping):
        raise KnobsSourceError(f"additional_config.{ADDITIONAL_CONFIG_KEY} must be an object")
    unknown = sorted(set(section) - {"knobs", "knobs_file", "status_file", "profile"})
    if unknown:
        raise KnobsSourceError(
            f"unknown keys in additional_config.{ADDITIONAL_CONFIG_KEY}: {', '.join(unknown)}"
        )
    inline = section.get("knobs", {})
    if not isinstance(inline, Mapping):
        raise KnobsSourceError(f"additional_config.{ADDITIONAL_CONFIG_KEY}.knobs must be an object")
    if environ.get(POLICY_ENV) and "policy" not in inline:
        inline = {**inline, "policy": environ[POLICY_ENV]}
    try:
        initial = Knobs.model_validate(inline)
    except ValidationError as exc:
        raise KnobsSourceError(f"initial knobs: {exc}") from exc
    file_raw = section.get("knobs_file") or environ.get(KNOBS_FILE_ENV) or None
    knobs_file = Path(str(file_raw)) if file_raw else None
    status_raw = section.get("status_file") or environ.get(KNOBS_STATUS_FILE_ENV) or None
    status_file = Path(str(status_raw)) if status_raw else None
    if status_file is None and knobs_file is not None:
        status_file = knobs_file.with_name(knobs_file.name + ".applied")
    profile_raw = section.get("profile") or environ.get(PROFILE_ENV) or None
    return KnobsConfig(
        initial=initial,
        knobs_file=knobs_file,
        status_file=status_file,
        profile=str(profile_raw) if profile_raw else None,
    )


def parse_knobs_json(text: str, origin: str) -> Knobs:
    """Validate a knob document; errors name the origin and the field."""
    try:
        return Knobs.model_validate_json(text)
    except ValidationError as exc:
        raise KnobsSourceError(f"{origin}: {exc}") from exc


def parse_knobs_document(document: Mapping[str, object], origin: str) -> Knobs:
    """Validate an already-decoded knob document (wire names); errors name the field."""
    try:
        return Knobs.model_validate(dict(document))
    except ValidationError as exc:
        raise KnobsSourceError(f"{origin}: {exc}") from exc


class KnobsFile:
    """Polls one knobs file; a change of (inode, size, mtime) triggers a re-read.

    An invalid document is reported once per change and otherwise ignored, so a
    bad edit never stops the engine: the last good knobs stay in force.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._signature: tuple[int, int, int] | None = None
        self.errors = 0
        """Documents rejected so far (exported by the scheduler's stats)."""

    def poll(self) -> Knobs | None:
        """The new document if the file changed since the last poll, else ``None``."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        if signature == self._signature:
            return None
        self._signature = signature
        try:
            return parse_knobs_json(self.path.read_text(), str(self.path))
        except (OSError, KnobsSourceError) as exc:
            self.errors += 1
            log.error("sloserve: ignoring knobs file change: %s", exc)
            return None


def write_status(path: Path, knobs: Knobs) -> None:
    """Atomically publish the applied ``KnobsState`` (readers never see half a file)."""
    state = KnobsState(revision=knobs.revision(), knobs=knobs)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state.model_dump(mode="json", by_alias=True)))
    tmp.replace(path)
