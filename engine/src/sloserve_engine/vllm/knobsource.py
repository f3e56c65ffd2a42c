"""Live knobs for the engine core: where the knob document comes from and how it is read back.

The scheduler runs inside vLLM's EngineCore process (a child of ``vllm
serve``), so the engine server hands knobs over through a file it rewrites
atomically (temp file + ``os.replace``): the scheduler ``stat``s it at the
start of every step and applies a changed document before planning that step.
After applying, it writes the :class:`~sloserve_engine.contract.knobs.KnobsState` it
now runs with to the status file, which is how the server reads the applied
revision back. Both paths come from the environment (inherited by the engine
core) or from ``--additional-config '{"sloserve": {...}}'``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..contract.knobs import InvalidKnobsError, Knobs, parse_knobs
from ..contract.pod import (
    APPLIED_SUFFIX,
    KNOBS_PATH_ENV,
    KNOBS_STATUS_PATH_ENV,
    POLICY_ENV,
    PROFILE_ENV,
)

log = logging.getLogger(__name__)

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
        initial = parse_knobs(inline, "initial knobs")
    except InvalidKnobsError as exc:
        raise KnobsSourceError(str(exc)) from exc
    file_raw = section.get("knobs_file") or environ.get(KNOBS_PATH_ENV) or None
    knobs_file = Path(str(file_raw)) if file_raw else None
    status_raw = section.get("status_file") or environ.get(KNOBS_STATUS_PATH_ENV) or None
    status_file = Path(str(status_raw)) if status_raw else None
    if status_file is None and knobs_file is not None:
        status_file = knobs_file.with_name(knobs_file.name + APPLIED_SUFFIX)
    profile_raw = section.get("profile") or environ.get(PROFILE_ENV) or None
    return KnobsConfig(
        initial=initial,
        knobs_file=knobs_file,
        status_file=status_file,
        profile=str(profile_raw) if profile_raw else None,
    )


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
            return parse_knobs(self.path.read_bytes(), str(self.path))
        except (OSError, InvalidKnobsError) as exc:
            self.errors += 1
            log.error("sloserve: ignoring knobs file change: %s", exc)
            return None
