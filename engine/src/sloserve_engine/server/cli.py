"""``sloserve-engine``: the process the operator runs in every engine pod (docs/engine.md).

    sloserve-engine [--simulated] --host 0.0.0.0 --port 8000 --served-model-name NAME
        --knobs-file /etc/sloserve/knobs/knobs.json --admin-token-file /etc/sloserve/admin/token
        [--profile h200-llama-3.1-8b] [--kv-tokens 97488] [-- <extra vllm serve args>]

Real mode starts ``vllm serve`` with the sloserve scheduler behind a proxy
that adds the admin API; ``--simulated`` serves the same HTTP API from the
simulator in real time. See docs/engine.md.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from ..contract.knobs import InvalidKnobsError, Knobs, load_knobs_file
from ..contract.pod import APPLIED_SUFFIX, HTTP_PORT, STATE_PATH_ENV
from ..policy.costmodel import cost_model_for
from ..sim import SimConfig, load_profile
from .auth import AdminAuth, AdminTokenError
from .body import DEFAULT_MAX_BODY_BYTES
from .knobs_store import KnobsStore, check_policy_buildable
from .logscrub import install_access_log_scrubber
from .proxy import build_proxy_app
from .simulated_app import SimulatedOptions, build_simulated_app
from .supervisor import VllmProcess, free_loopback_port
from .vllm_command import VllmLaunch, build_vllm_command, vllm_environment

log = logging.getLogger("sloserve_engine.server")

DEFAULT_PROFILE = "h200-llama-3.1-8b"
GRACEFUL_SHUTDOWN_S = 20
"""Seconds open responses get to finish after SIGTERM (within Kubernetes' default 30 s)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sloserve-engine",
        description="Serve an LLM with sloserve's SLO-aware scheduler (vLLM, or --simulated).",
        epilog="Arguments after `--` go to `vllm serve` (in --simulated mode, --max-model-len, "
        "--max-num-seqs, --max-num-batched-tokens and --block-size among them configure the "
        "simulated engine).",
    )
    p.add_argument("--simulated", action="store_true", help="serve from the simulator, no GPU")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument(
        "--port", type=int, default=HTTP_PORT, help=f"port to listen on (default {HTTP_PORT})"
    )
    p.add_argument(
        "--served-model-name", default="model", help="model name clients send (default model)"
    )
    p.add_argument(
        "--model", help="real mode: model path or id for `vllm serve` (default: served name)"
    )
    p.add_argument("--knobs-file", type=Path, help="initial knobs JSON (the mounted ConfigMap)")
    p.add_argument(
        "--admin-token-file",
        type=Path,
        help="bearer token for PUT /sloserve/knobs; without it knobs are read-only (403)",
    )
    p.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help=f"cost-model profile name or JSON path (default {DEFAULT_PROFILE})",
    )
    p.add_argument(
        "--kv-tokens", type=int, help="KV-cache size in tokens (simulated default 97488)"
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="simulated: modelled seconds per wall second (>1 runs faster than real time)",
    )
    p.add_argument(
        "--startup-delay-s",
        type=float,
        default=0.0,
        help="simulated: seconds before the server listens, like a model load (makes cold "
        "starts from zero replicas visible; default 0)",
    )
    p.add_argument(
        "--attainment-window-s",
        type=float,
        default=60.0,
        help="sliding window of sloserve_slo_attainment_ratio, seconds (default 60)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body accepted, larger ones get 413 (default "
        f"{DEFAULT_MAX_BODY_BYTES}: a 128K-token prompt as text or token ids)",
    )
    p.add_argument("--vllm-port", type=int, default=0, help="real mode: vLLM's loopback port")
    p.add_argument("--vllm-executable", default="vllm", help="real mode: the vllm CLI to run")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def split_extra(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Our arguments and the ones after the first ``--`` (for ``vllm serve``)."""
    args = list(argv)
    if "--" in args:
        i = args.index("--")
        return args[:i], args[i + 1 :]
    return args, []


def sim_config_from(kv_tokens: int | None, extra: Sequence[str]) -> SimConfig:
    """Engine limits of the simulated engine from the same flags ``vllm serve`` would get."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--max-model-len", type=int)
    p.add_argument("--max-num-seqs", type=int)
    p.add_argument("--max-num-batched-tokens", type=int)
    p.add_argument("--block-size", type=int)
    known, ignored = p.parse_known_args(list(extra))
    if ignored:
        log.info("simulated engine ignores vllm args: %s", " ".join(ignored))
    values = {k: v for k, v in vars(known).items() if v is not None}
    if kv_tokens is not None:
        values["kv_tokens"] = kv_tokens
    return SimConfig(**values)


def initial_knobs(path: Path | None) -> Knobs:
    if path is None:
        log.info("no --knobs-file: starting from default knobs")
        return Knobs()
    knobs = load_knobs_file(path)
    check_policy_buildable(knobs)
    return knobs


def _serve(app: FastAPI, args: argparse.Namespace) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    install_access_log_scrubber()  # after uvicorn's logging set-up, which Config runs
    return uvicorn.Server(config)


def run_simulated(args: argparse.Namespace, extra: list[str]) -> int:
    if not 0.0 <= args.startup_delay_s <= 3600.0:
        raise ValueError("--startup-delay-s must be within [0, 3600]")
    opts = SimulatedOptions(
        served_model_name=args.served_model_name,
        knobs=initial_knobs(args.knobs_file),
        profile=load_profile(args.profile),
        sim_config=sim_config_from(args.kv_tokens, extra),
        admin_token_file=args.admin_token_file,
        time_scale=args.time_scale,
        attainment_window_s=args.attainment_window_s,
        max_body_bytes=args.max_body_bytes,
    )
    if args.startup_delay_s:
        log.info("simulated model load: listening in %g s", args.startup_delay_s)
        time.sleep(args.startup_delay_s)
    _serve(build_simulated_app(opts), args).run()
    return 0


def run_real(args: argparse.Namespace, extra: list[str]) -> int:
    knobs = initial_knobs(args.knobs_file)
    auth = AdminAuth(args.admin_token_file)
    run_dir = Path(tempfile.mkdtemp(prefix="sloserve-engine-"))
    prometheus_dir = run_dir / "prometheus"
    prometheus_dir.mkdir()
    knobs_path = run_dir / "knobs.json"
    store = KnobsStore(knobs, mirror_path=knobs_path)
    vllm_port = args.vllm_port or free_loopback_port()
    argv = build_vllm_command(
        VllmLaunch(
            model=args.model or args.served_model_name,
            served_model_name=args.served_model_name,
            port=vllm_port,
            kv_tokens=args.kv_tokens,
            extra_args=tuple(extra),
            executable=args.vllm_executable,
        )
    )
    state_path = run_dir / "state.json"
    env = vllm_environment(os.environ, prometheus_dir, knobs_path, args.profile)
    process = VllmProcess(argv, {**env, STATE_PATH_ENV: str(state_path)})
    server: uvicorn.Server | None = None

    def vllm_exited(_: int) -> None:
        if server is not None:
            server.should_exit = True

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        """vLLM runs while the server runs; the run directory goes with it (inside the
        lifespan because uvicorn re-raises SIGTERM once serving ends)."""
        try:
            async with process.running(vllm_exited):
                yield
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    app = build_proxy_app(
        store,
        auth,
        f"http://127.0.0.1:{vllm_port}",
        lifespan,
        applied_status_file=knobs_path.with_name(knobs_path.name + APPLIED_SUFFIX),
        state_file=state_path,
        cost=cost_model_for(args.profile),
        max_body_bytes=args.max_body_bytes,
    )
    server = _serve(app, args)
    server.run()
    return process.returncode or 0


def main(argv: Sequence[str] | None = None) -> int:
    ours, extra = split_extra(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(ours)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.simulated:
            return run_simulated(args, extra)
        return run_real(args, extra)
    except (InvalidKnobsError, AdminTokenError, ValueError) as exc:
        print(f"sloserve-engine: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
