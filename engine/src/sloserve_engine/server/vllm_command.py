"""How ``sloserve-engine`` starts ``vllm serve`` in real mode (pure, unit-tested).

vLLM listens on loopback only; the engine server in front of it owns the
pod's port (see docs/engine.md for why a proxy and not an endpoint plug-in).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..contract.pod import KNOBS_PATH_ENV, PROFILE_ENV

SCHEDULER_CLS = "sloserve_engine.vllm.scheduler.SLOScheduler"
"""The plug-in scheduler the vLLM-adapter engineer provides (an ``AsyncScheduler`` subclass)."""
PROMETHEUS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's multiprocess directory: engine-core metrics reach vLLM's /metrics."""
BLOCK_SIZE = 16
"""vLLM's default KV block size, used to turn ``--kv-tokens`` into a block count."""

_OWNED_FLAGS = ("--host", "--port", "--served-model-name", "--scheduler-cls")


@dataclass(frozen=True, slots=True)
class VllmLaunch:
    model: str
    served_model_name: str
    port: int
    kv_tokens: int | None = None
    extra_args: tuple[str, ...] = ()
    executable: str = "vllm"


def owned_flag_conflicts(extra_args: Sequence[str]) -> list[str]:
    """Extra args that would override what the engine server must control."""
    return [a for a in extra_args if any(a == f or a.startswith(f + "=") for f in _OWNED_FLAGS)]


def _block_size(extra_args: Sequence[str]) -> int:
    for i, arg in enumerate(extra_args):
        if arg.startswith("--block-size="):
            return int(arg.split("=", 1)[1])
        if arg == "--block-size" and i + 1 < len(extra_args):
            return int(extra_args[i + 1])
    return BLOCK_SIZE


def split_model_arg(extra_args: Sequence[str]) -> tuple[str | None, list[str]]:
    """Take ``--model M`` (or ``--model=M``) out of the extra args: ``vllm serve`` wants the
    model positionally, and the operator renders it as an extra arg."""
    rest = list(extra_args)
    for i, arg in enumerate(rest):
        if arg.startswith("--model="):
            return arg.split("=", 1)[1], rest[:i] + rest[i + 1 :]
        if arg == "--model" and i + 1 < len(rest):
            return rest[i + 1], rest[:i] + rest[i + 2 :]
    return None, rest


def build_vllm_command(launch: VllmLaunch) -> list[str]:
    """The ``vllm serve`` argv: loopback, our scheduler, then the operator's extra args.

    A ``--model`` among the extra args wins over :attr:`VllmLaunch.model`.
    """
    model, extra = split_model_arg(launch.extra_args)
    conflicts = owned_flag_conflicts(extra)
    if conflicts:
        raise ValueError(
            f"extra vllm args may not set {', '.join(conflicts)}: sloserve-engine controls them"
        )
    cmd = [
        launch.executable,
        "serve",
        model or launch.model,
        "--host",
        "127.0.0.1",
        "--port",
        str(launch.port),
        "--served-model-name",
        launch.served_model_name,
        "--scheduler-cls",
        SCHEDULER_CLS,
    ]
    if launch.kv_tokens is not None:
        blocks = launch.kv_tokens // _block_size(extra)
        cmd += ["--num-gpu-blocks-override", str(blocks)]
    return cmd + extra


def vllm_environment(
    base: Mapping[str, str], prometheus_dir: Path, knobs_path: Path, profile: str
) -> dict[str, str]:
    """The child's environment: ours plus where knobs and metrics travel between processes."""
    return {
        **base,
        PROMETHEUS_DIR_ENV: str(prometheus_dir),
        KNOBS_PATH_ENV: str(knobs_path),
        PROFILE_ENV: profile,
    }
