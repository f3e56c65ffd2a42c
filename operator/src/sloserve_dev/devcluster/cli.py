"""``sloserve testenv up|down|status``: a local control plane with simulated GPU nodes.

``up`` runs in the foreground (Ctrl-C stops it) and records itself in a state file so that
``down`` from another terminal can stop exactly that process and nothing else.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sloserve_dev.devcluster.cluster import DevCluster, dev_cluster
from sloserve_dev.devcluster.controlplane import ControlPlaneConfig
from sloserve_dev.devcluster.kubelet import ProcessKubelet
from sloserve_dev.devcluster.nodes import GPU_PRODUCTS, default_gpu_nodes
from sloserve_dev.devcluster.processes import (
    PortInUseError,
    ProcessFailedError,
    interrupt_on_sigterm,
)
from sloserve_dev.devcluster.testenv import TestenvMissingError, find_testenv

STATE_FILE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / (
    "sloserve-testenv/run/current.json"
)


@dataclass(frozen=True)
class RunState:
    """What ``up`` tells other commands: who to signal and where the kubeconfig is."""

    pid: int
    kubeconfig: str
    server: str
    workdir: str

    def dump(self) -> str:
        return json.dumps(self.__dict__, indent=2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = sub.add_parser("up", help="start the control plane and GPU nodes; Ctrl-C stops it")
    add_cluster_arguments(up)
    up.add_argument(
        "--no-kubelet",
        action="store_true",
        help="run no pods as local processes (no process kubelet; kwok marks every pod Ready)",
    )
    sub.add_parser("down", help="stop the control plane that `sloserve testenv up` started")
    sub.add_parser("status", help="print the running control plane's kubeconfig and server")


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Shared by ``testenv up`` and ``demo``."""
    parser.add_argument("--nodes", type=int, default=2, help="simulated GPU nodes (default 2)")
    parser.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node (default 8)")
    parser.add_argument(
        "--gpu-type", choices=sorted(GPU_PRODUCTS), default="h100", help="GPU type label"
    )
    parser.add_argument(
        "--api-port", type=int, default=None, help="fixed kube-apiserver port (default: free)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="state and logs (default: a new temp dir)"
    )


def cluster_from_args(args: argparse.Namespace) -> tuple[list[str], ControlPlaneConfig]:
    """Validate the shared arguments; returns problems (empty if fine) and the config."""
    problems = []
    if args.nodes < 1:
        problems.append("--nodes must be at least 1")
    if args.gpus_per_node < 0:
        problems.append("--gpus-per-node must not be negative")
    config = ControlPlaneConfig(workdir=args.workdir, apiserver_port=args.api_port)
    return problems, config


def _read_state() -> RunState | None:
    try:
        return RunState(**json.loads(STATE_FILE.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _is_our_up_process(pid: int) -> bool:
    """Guard against a stale state file whose PID now belongs to someone else."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"testenv" in cmdline and b"up" in cmdline


def _up(args: argparse.Namespace) -> int:
    problems, config = cluster_from_args(args)
    if problems:
        print("sloserve testenv: " + "; ".join(problems), file=sys.stderr)
        return 2
    existing = _read_state()
    if existing and _is_our_up_process(existing.pid):
        print(
            f"sloserve testenv: already running (pid {existing.pid}, "
            f"KUBECONFIG={existing.kubeconfig}); `sloserve testenv down` stops it",
            file=sys.stderr,
        )
        return 1
    testenv = find_testenv()
    nodes = default_gpu_nodes(args.nodes, args.gpu_type, args.gpus_per_node)
    started = time.monotonic()
    if args.no_kubelet:  # nothing will probe the pods: kwok's instant readiness
        config = dataclasses.replace(config, pod_readiness="instant")
    with dev_cluster(testenv, nodes, config) as cluster:
        cp = cluster.control_plane
        kubelet = None
        state = RunState(os.getpid(), str(cp.kubeconfig), cp.server, str(cp.workdir))
        try:
            if not args.no_kubelet:
                kubelet = ProcessKubelet(
                    cp.server,
                    cp.pki,
                    cp.workdir / "pods",
                    log_path=cp.logs_dir / "process-kubelet.log",
                ).start()
            STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
            STATE_FILE.write_text(state.dump())
            _announce(cluster, time.monotonic() - started)  # last: "up" means usable
            threading.Event().wait()  # until SIGINT/SIGTERM (see interrupt_on_sigterm)
        except KeyboardInterrupt:
            pass  # the normal way to stop `up`
        finally:
            print("sloserve testenv: stopping", file=sys.stderr)
            if kubelet is not None:
                kubelet.stop()
            if _read_state() == state:
                STATE_FILE.unlink(missing_ok=True)
    return 0


def _announce(cluster: DevCluster, seconds: float) -> None:
    cp = cluster.control_plane
    gpus = sum(n.gpus for n in cluster.nodes)
    print(
        f"control plane up in {seconds:.1f} s at {cp.server}: {len(cluster.nodes)} simulated "
        f"GPU nodes, {gpus} x nvidia.com/gpu, pod IPs from {cp.pod_cidr}\n"
        f"  export KUBECONFIG={cp.kubeconfig}\n"
        f"  export PATH={cp.testenv.bin_dir}:$PATH\n"
        f"  logs: {cp.logs_dir}"
    )
    sys.stdout.flush()


def _down() -> int:
    state = _read_state()
    if state is None or not _is_our_up_process(state.pid):
        print("sloserve testenv: nothing running", file=sys.stderr)
        STATE_FILE.unlink(missing_ok=True)
        return 0
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _is_our_up_process(state.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _is_our_up_process(state.pid):
        print(f"sloserve testenv: pid {state.pid} still running after 60 s", file=sys.stderr)
        return 1
    print(f"sloserve testenv: stopped (pid {state.pid})")
    return 0


def run(args: argparse.Namespace) -> int:
    interrupt_on_sigterm()
    try:
        if args.action == "up":
            return _up(args)
        if args.action == "down":
            return _down()
        state = _read_state()
        if state is None or not _is_our_up_process(state.pid):
            print("not running")
            return 1
        print(state.dump())
        return 0
    except KeyboardInterrupt:
        print("sloserve testenv: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    except (TestenvMissingError, PortInUseError, ProcessFailedError, TimeoutError) as exc:
        print(f"sloserve testenv: {exc}", file=sys.stderr)
        return 1
