"""``sloserve``: one console script; each subcommand lives in the module that owns it.

Subcommands import lazily, so ``sloserve --help`` stays fast and ``sloserve operator`` runs
from the ``[operator]`` extra alone: the benchmark and dev-cluster commands load their own
dependencies (the ``[bench]`` extra) only when they run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple


class Subcommand(NamedTuple):
    module: str
    """Module with ``add_arguments(parser)`` and ``run(args) -> int``."""
    help: str
    extra: str
    """The pyproject extra whose dependencies the module imports (named in the error)."""


SUBCOMMANDS: dict[str, Subcommand] = {
    "bench": Subcommand(
        "sloserve_engine.bench.cli", "benchmarks: simulated (sim) and GPU (gpu)", "bench"
    ),
    "demo": Subcommand(
        "sloserve_dev.devcluster.demo", "local demo: cluster, operator, live status", "bench"
    ),
    "crds": Subcommand(
        "sloserve_operator.crdgen",
        "write the generated CRDs into crds/ and the Helm chart",
        "operator",
    ),
    "operator": Subcommand(
        "sloserve_operator.main", "run the operator against the current kubeconfig", "operator"
    ),
    "testenv": Subcommand(
        "sloserve_dev.devcluster.cli", "start or stop the local control plane", "bench"
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sloserve", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in SUBCOMMANDS.items():
        sub.add_parser(name, help=command.help, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        build_parser().parse_args(argv)  # prints usage / error and exits
        return 2
    name, rest = argv[0], argv[1:]
    command = SUBCOMMANDS[name]
    try:
        module = importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] in {
            "sloserve_engine",
            "sloserve_operator",
            "sloserve_dev",
        }:
            raise
        print(
            f"sloserve {name}: missing dependency {exc.name!r}; "
            f"install the [{command.extra}] extra: pip install 'sloserve[{command.extra}]'",
            file=sys.stderr,
        )
        return 2
    parser = argparse.ArgumentParser(prog=f"sloserve {name}", description=command.help)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    run: Callable[[argparse.Namespace], int] = module.run
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
