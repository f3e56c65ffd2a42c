"""``sloserve``: one console script; each subcommand lives in the module that owns it.

Subcommands import lazily so ``sloserve --help`` stays fast and the engine's
heavy dependencies load only for the commands that need them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    # name: (module with add_arguments(parser) and run(args) -> int, help)
    "bench": ("sloserve_engine.bench.cli", "benchmarks: simulated (sim) and GPU (gpu)"),
    "demo": ("sloserve_dev.devcluster.demo", "local demo: cluster, operator, live status"),
    "crds": ("sloserve_operator.crdgen", "write the generated CRDs into crds/ and the Helm chart"),
    "operator": (
        "sloserve_operator.main",
        "run the operator against the current kubeconfig",
    ),
    "testenv": ("sloserve_dev.devcluster.cli", "start or stop the local control plane"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sloserve", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        build_parser().parse_args(argv)  # prints usage / error and exits
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"sloserve {name}", description=SUBCOMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    run: Callable[[argparse.Namespace], int] = module.run
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
