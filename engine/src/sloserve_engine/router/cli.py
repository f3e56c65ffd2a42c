"""``sloserve-router``: the OpenAI-compatible front of one LLMService's engines.

    sloserve-router --port 8000 (--engines host:port,... | --engines-dns name:port
                                 | --engines-file path)
        [--served-model-name NAME] [--max-model-len 8192]
        [--knobs-file router-knobs.json] [--engine-knobs-file knobs.json]
        [--admin-token-file /etc/sloserve/admin/token] [--profile h200-llama-3.1-8b]
        [--poll-interval-ms 50] [--stale-after-ms 1000] [--resolve-interval-s 5]

See docs/router.md ("Running").
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import uvicorn
from pydantic import ValidationError

from ..contract.knobs import InvalidKnobsError, Knobs, load_knobs_file
from ..policy.costmodel import CostModelError, cost_model_for, load_cost_model
from ..server.auth import AdminAuth, AdminTokenError
from .app import DEFAULT_MAX_BODY_BYTES, Router, RouterOptions, build_router_app
from .engines import dns_discovery, file_discovery, static_discovery
from .knobs import RouterKnobs
from .requests import ServiceLimits

GRACEFUL_SHUTDOWN_S = 20
"""Seconds open streams get to finish after SIGTERM (within Kubernetes' default 30 s)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sloserve-router",
        description="SLO-aware router with admission control in front of sloserve engines.",
    )
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--engines", help="static engine list: host:port,host:port,...")
    where.add_argument(
        "--engines-file",
        type=Path,
        help="file with one host:port per line, re-read every --resolve-interval-s "
        "(engines kept outside Kubernetes)",
    )
    where.add_argument(
        "--engines-dns",
        help="engines' headless Service as name:port; every address it resolves to is an "
        "engine (re-resolved every --resolve-interval-s)",
    )
    p.add_argument(
        "--served-model-name", default="model", help="model name clients send (default model)"
    )
    p.add_argument(
        "--max-model-len", type=int, default=8192, help="engines' context length (default 8192)"
    )
    p.add_argument("--knobs-file", type=Path, help="initial router knobs JSON (RouterKnobs)")
    p.add_argument(
        "--engine-knobs-file",
        type=Path,
        help="the engines' knobs JSON: its sloDefaults are the SLO of requests without one",
    )
    p.add_argument(
        "--admin-token-file",
        type=Path,
        help="bearer token for PUT /sloserve/knobs here and for the engines' reservation API; "
        "without it knobs are read-only and placements skip the engine shields",
    )
    p.add_argument(
        "--profile",
        default="h200-llama-3.1-8b",
        help="cost-model profile name or JSON path the placement predicts TTFT with",
    )
    p.add_argument("--poll-interval-ms", type=float, default=50.0, help="state poll period")
    p.add_argument(
        "--stale-after-ms",
        type=float,
        default=1000.0,
        help="an engine whose state is older leaves placement (default 1000)",
    )
    p.add_argument("--resolve-interval-s", type=float, default=5.0, help="DNS re-resolve period")
    p.add_argument(
        "--upstream-timeout-s",
        type=float,
        default=600.0,
        help="longest silence on an engine response before it counts as failed",
    )
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    p.add_argument("--seed", type=int, help="placement RNG seed (default: per process)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def options_from(args: argparse.Namespace) -> RouterOptions:
    """Validated options; ``ValueError`` (and its subclasses) say which flag is wrong."""
    for flag in ("poll_interval_ms", "stale_after_ms", "resolve_interval_s", "upstream_timeout_s"):
        if getattr(args, flag) <= 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be > 0")
    if args.max_model_len < 2 or args.max_body_bytes < 1:
        raise ValueError("--max-model-len must be >= 2 and --max-body-bytes >= 1")
    if args.engines:
        discover = static_discovery(args.engines)
    elif args.engines_file:
        discover = file_discovery(args.engines_file)
    else:
        discover = dns_discovery(args.engines_dns)
    knobs = RouterKnobs()
    if args.knobs_file is not None:
        try:
            knobs = RouterKnobs.model_validate_json(args.knobs_file.read_bytes())
        except OSError as exc:
            raise ValueError(f"--knobs-file {args.knobs_file}: {exc.strerror}") from None
        except ValidationError as exc:
            raise ValueError(f"--knobs-file {args.knobs_file}: {exc}") from None
    engine_knobs = load_knobs_file(args.engine_knobs_file) if args.engine_knobs_file else Knobs()
    AdminAuth(args.admin_token_file)  # an unusable token file fails here, not on first use
    if args.profile.endswith(".json"):
        cost = load_cost_model(Path(args.profile))
    else:
        cost = cost_model_for(args.profile)
    return RouterOptions(
        discover=discover,
        limits=ServiceLimits(
            args.served_model_name,
            args.max_model_len,
            engine_knobs.slo_defaults,
        ),
        cost=cost,
        knobs=knobs,
        admin_token_file=args.admin_token_file,
        poll_interval_s=args.poll_interval_ms / 1000.0,
        stale_after_s=args.stale_after_ms / 1000.0,
        resolve_interval_s=args.resolve_interval_s,
        upstream_read_timeout_s=args.upstream_timeout_s,
        max_body_bytes=args.max_body_bytes,
        seed=args.seed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        opts = options_from(args)
    except (InvalidKnobsError, AdminTokenError, CostModelError, ValueError) as exc:
        print(f"sloserve-router: error: {exc}", file=sys.stderr)
        return 2
    app = build_router_app(opts)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        access_log=False,
        proxy_headers=False,  # nothing reads the client address; one middleware less a request
    )
    DrainingServer(config, app.router).run()
    return 0


class DrainingServer(uvicorn.Server):
    """uvicorn's server, except that a stop signal (a pod deleted or restarted) first answers
    the requests held in the router's queue with 503 and ``Retry-After``: held at zero they
    would otherwise wait out the shutdown grace and then lose their connection, while the
    client could retry at another router replica now."""

    def __init__(self, config: uvicorn.Config, router: Router) -> None:
        super().__init__(config)
        self._router = router

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._router.draining = True  # a flag only: the event loop's next tick acts on it
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    sys.exit(main())
