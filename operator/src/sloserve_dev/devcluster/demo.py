"""``sloserve demo``: the whole system on one machine, no GPU, no containers.

Builds or reuses the control plane, registers simulated GPU nodes, runs engine pods as local
``sloserve-engine --simulated`` processes (the process kubelet), installs the CRDs with
kubectl, runs the operator, applies docs/examples/llmservice.yaml, drives swinging load at the
router pods (at the engine pods when the service has no router tier) and shows live status until
Ctrl-C (or ``--duration``); then cleans up.

A terminal gets a live view that redraws in place; a pipe or a log file gets plain,
timestamped status lines at a steady interval instead, because a redrawn frame shows nothing
until exit there. Either way the first lines are the commands to paste into another terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from sloserve_dev.devcluster.cli import add_cluster_arguments, cluster_from_args
from sloserve_dev.devcluster.cluster import DevCluster, dev_cluster
from sloserve_dev.devcluster.controlplane import ControlPlaneConfig
from sloserve_dev.devcluster.kubeapi import JsonObj, KubeApi, KubeApiError
from sloserve_dev.devcluster.kubelet import ProcessKubelet, pod_ready_condition
from sloserve_dev.devcluster.loadgen import (
    LoadProfile,
    LoadStats,
    drive_load,
    drive_zero_episode,
)
from sloserve_dev.devcluster.nodes import GpuNodeSpec, default_gpu_nodes
from sloserve_dev.devcluster.processes import (
    ManagedProcess,
    PortInUseError,
    ProcessFailedError,
    free_port,
    interrupt_on_sigterm,
)
from sloserve_dev.devcluster.testenv import (
    REPO_ROOT,
    TESTENV_SCRIPT,
    Testenv,
    TestenvMissingError,
    find_testenv,
)

OPERATOR_MODULE = "sloserve_operator.main"
SERVICE_LABEL = "sloserve.io/service"
NAME_LABEL = "app.kubernetes.io/name"
ROUTER_NAME = "sloserve-router"
ENGINE_PORT_DEFAULT = 8000
EVENTS_SHOWN = 6
ZERO_IDLE_S = 30
"""``--scale-to-zero``: the shortest idle window the CRD allows (scaleToZeroAfterS)."""
ZERO_STARTUP_DELAY_S = 10
"""``--scale-to-zero``: the simulated engines' "model load", so the cold start shows."""

console = Console()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_cluster_arguments(parser)
    # The engines are simulated with the H200 profile, so the nodes say H200 too.
    parser.set_defaults(gpu_type="h200")
    parser.add_argument(
        "--example",
        type=Path,
        default=REPO_ROOT / "docs/examples/llmservice.yaml",
        help="LLMService manifest to apply",
    )
    parser.add_argument(
        "--crds", type=Path, default=REPO_ROOT / "crds", help="CRD manifests to install"
    )
    parser.add_argument("--namespace", default="sloserve-demo", help="namespace of the demo")
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0: Ctrl-C)"
    )
    parser.add_argument("--peak-rps", type=float, default=24.0, help="peak request rate")
    parser.add_argument("--low-rps", type=float, default=2.0, help="lowest request rate")
    parser.add_argument(
        "--period", type=float, default=120.0, help="seconds per low-peak-low load cycle"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=5.0,
        help="seconds between status lines when stdout is not a terminal",
    )
    parser.add_argument(
        "--scale-to-zero",
        action="store_true",
        help="show a scale-to-zero episode instead of the swinging load: the service may go "
        f"to zero after {ZERO_IDLE_S} s idle, engines take {ZERO_STARTUP_DELAY_S} s to start; "
        "warm load, idle until zero, then a burst at zero (repeated)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the working directory (logs, kubeconfig) after exit",
    )


def operator_available() -> bool:
    return importlib.util.find_spec(OPERATOR_MODULE) is not None


def ensure_testenv() -> Testenv:
    """Reuse the cached binaries, or build them (progress on stderr) on a fresh machine."""
    try:
        return find_testenv()
    except TestenvMissingError:
        console.print(
            "[yellow]control-plane binaries not built yet: running hack/testenv.sh "
            "(about 30 min once; cached afterwards)"
        )
        subprocess.run(["bash", str(TESTENV_SCRIPT)], check=True, stdout=subprocess.DEVNULL)
        return find_testenv()


# ---------------------------------------------------------------- pure: what to show


def engine_url(pod: JsonObj) -> str | None:
    """``http://<podIP>:<port>`` of an engine pod (port from containerPort or ``--port``)."""
    ip = pod.get("status", {}).get("podIP")
    containers = pod.get("spec", {}).get("containers") or []
    if not ip or not containers:
        return None
    port = ENGINE_PORT_DEFAULT
    ports = containers[0].get("ports") or []
    if ports:
        port = int(ports[0]["containerPort"])
    argv = [*(containers[0].get("command") or []), *(containers[0].get("args") or [])]
    for i, arg in enumerate(argv):
        if arg == "--port" and i + 1 < len(argv):
            port = int(argv[i + 1])
        elif arg.startswith("--port="):
            port = int(arg.split("=", 1)[1])
    return f"http://{ip}:{port}"


def is_router(pod: JsonObj) -> bool:
    return bool((pod.get("metadata", {}).get("labels") or {}).get(NAME_LABEL) == ROUTER_NAME)


def load_targets(pods: list[JsonObj], serving: set[str]) -> tuple[list[str], str]:
    """Where load goes, and through what: the ready router pods, as the LLMService's Service
    would pick them; the ready engine pods only when no router is ready (no router tier, or
    routers still starting). ``serving`` names the pods whose process is up."""

    def urls(router: bool) -> list[str]:
        return [
            url
            for pod in pods
            if is_router(pod) == router
            and pod_ready_condition(pod)
            and pod.get("metadata", {}).get("name") in serving
            and (url := engine_url(pod))
        ]

    routers = urls(True)
    return (routers, "router") if routers else (urls(False), "engines")


def next_steps(kubeconfig: Path, bin_dir: Path, namespace: str, name: str, workdir: Path) -> str:
    """What a newcomer pastes into a second terminal, and where every log is.

    Engine logs are files, not ``kubectl logs``: the process kubelet runs pods as local
    processes and serves no kubelet API, so the API server has nothing to proxy logs from.
    """
    return "\n".join(
        [
            "The demo is running. In another terminal:",
            f"  export KUBECONFIG={kubeconfig} PATH={bin_dir}:$PATH",
            f"  kubectl -n {namespace} get llms",
            f"  kubectl -n {namespace} describe llms {name}",
            f"  kubectl -n {namespace} get events --sort-by=.lastTimestamp",
            f"Engine logs: {workdir}/pods/{namespace}_<pod>_<uid>/container.log "
            "(`kubectl logs` needs a kubelet API, which the local process kubelet does not serve)",
            f"Operator and control-plane logs: {workdir}/logs/",
            "Stop: Ctrl-C (or --duration N).",
        ]
    )


def status_line(
    now: float, service: JsonObj | None, pods: list[JsonObj], stats: LoadStats, via: str = "-"
) -> str:
    """One plain, timestamped status line: what a pipe or a log file shows instead of the view."""
    status = (service or {}).get("status") or {}
    engines = [pod for pod in pods if not is_router(pod)]
    routers = [pod for pod in pods if is_router(pod)]
    ready_engines = sum(1 for pod in engines if pod_ready_condition(pod))
    ready_routers = sum(1 for pod in routers if pod_ready_condition(pod))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    zero = [
        f"activity={status['activity']}" if status.get("activity") else "",
        f"cold_start={status['lastColdStartSeconds']:g}s"
        if status.get("lastColdStartSeconds") is not None
        else "",
        f"phase={stats.phase}" if stats.phase else "",
        f"last_burst={stats.last_burst!r}" if stats.last_burst else "",
    ]
    return (
        f"{stamp} status replicas={_fmt(status.get('replicas'), '{}')} "
        f"ready={_fmt(status.get('readyReplicas'), '{}')} pods={ready_engines}/{len(engines)} "
        f"routers={ready_routers}/{len(routers)} via={via} "
        f"attainment={_fmt(status.get('sloAttainment'))} "
        f"kv_pressure={_fmt(status.get('kvPressure'))} rps={stats.rps:.1f} "
        f"sent={stats.sent} ok={stats.ok} failed={stats.failed} in_flight={stats.in_flight}"
        + "".join(f" {part}" for part in zero if part)
        + (f" last_error={stats.last_error!r}" if stats.last_error else "")
    )


def at_zero(service: JsonObj | None, pods: list[JsonObj]) -> bool:
    """The service asks for 0 replicas and no engine pod is left (the routers stay)."""
    spec = (service or {}).get("spec") or {}
    return spec.get("replicas") == 0 and not any(not is_router(pod) for pod in pods)


def with_scale_to_zero(manifest: JsonObj) -> JsonObj:
    """The manifest for ``--scale-to-zero``: minReplicas 0 after ``ZERO_IDLE_S`` idle (the
    scale-down window no longer, as the CRD requires), a visible engine start, and at least one
    router (the routers hold requests at zero)."""
    spec = dict(manifest.get("spec") or {})
    spec["autoscaling"] = {
        **(spec.get("autoscaling") or {}),
        "minReplicas": 0,
        "scaleToZeroAfterS": ZERO_IDLE_S,
        "scaleDownStabilizationSeconds": ZERO_IDLE_S,
    }
    spec["engine"] = {**(spec.get("engine") or {}), "simulatedStartupDelayS": ZERO_STARTUP_DELAY_S}
    router = dict(spec.get("router") or {})
    router["replicas"] = max(int(router.get("replicas", 2)), 1)
    spec["router"] = router
    return {**manifest, "spec": spec}


def event_line(now: float, event: JsonObj) -> str:
    """A new event as a timestamped line, so logs show scale and knob decisions as they happen."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return (
        f"{stamp} event {event.get('type', 'Normal')} {event.get('reason', '')}: "
        f"{event.get('message', '')}"
    )


def _fmt(value: object, pattern: str = "{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


def render_status(
    service: JsonObj | None,
    pods: list[JsonObj],
    stats: LoadStats,
    events: list[JsonObj],
    via: str = "-",
) -> Group:
    """The live view: service status, engine and router pods, load and the latest events."""
    status = (service or {}).get("status") or {}
    head = Table(title="LLMService", show_header=True, expand=True)
    columns = (
        "name",
        "replicas",
        "ready",
        "routers",
        "activity",
        "SLO attainment",
        "KV pressure",
        "last scale",
    )
    for column in columns:
        head.add_column(column)
    last = status.get("lastScale") or {}
    last_text = f"{last.get('from')}->{last.get('to')} {last.get('reason', '')}" if last else "-"
    head.add_row(
        (service or {}).get("metadata", {}).get("name", "(not created yet)"),
        _fmt(status.get("replicas"), "{}"),
        _fmt(status.get("readyReplicas"), "{}"),
        _fmt(status.get("readyRouters"), "{}"),
        _fmt(status.get("activity"), "{}"),
        _fmt(status.get("sloAttainment")),
        _fmt(status.get("kvPressure")),
        last_text,
    )
    pod_table = _pod_table("engine pods", [pod for pod in pods if not is_router(pod)])
    router_table = _pod_table("router pods", [pod for pod in pods if is_router(pod)])
    load = Table(title="load", expand=True)
    for column in ("target rps", "sent", "ok", "failed", "in flight", "targets", "via", "phase"):
        load.add_column(column)
    load.add_row(
        f"{stats.rps:.1f}",
        str(stats.sent),
        str(stats.ok),
        str(stats.failed),
        str(stats.in_flight),
        str(len(stats.targets)),
        via,
        stats.phase or "-",
    )
    event_table = Table(title="events (scale, knobs)", expand=True)
    for column in ("reason", "message"):
        event_table.add_column(column)
    for event in events[-EVENTS_SHOWN:]:
        event_table.add_row(event.get("reason", ""), event.get("message", ""))
    parts: list[Table | str] = [head, pod_table, router_table, load, event_table]
    if stats.last_burst:
        parts.append(f"last burst at zero: {stats.last_burst}")
    if stats.last_error:
        parts.append(f"last load error: {stats.last_error}")
    return Group(*parts)


def _pod_table(title: str, pods: list[JsonObj]) -> Table:
    table = Table(title=title, expand=True)
    for column in ("pod", "node", "pod IP", "phase", "ready"):
        table.add_column(column)
    for pod in pods:
        ready = pod_ready_condition(pod)
        table.add_row(
            pod["metadata"]["name"],
            pod.get("spec", {}).get("nodeName", "-"),
            pod.get("status", {}).get("podIP", "-"),
            pod.get("status", {}).get("phase", "-"),
            "-" if ready is None else str(ready),
        )
    return table


# ---------------------------------------------------------------- effects


def install_crds(cluster: DevCluster, crds: Path) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(crds))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/llmservices.sloserve.io", "--timeout=60s"
    )


@contextlib.contextmanager
def operator_process(cluster: DevCluster, namespace: str) -> Iterator[ManagedProcess]:
    """The operator as its own process, exactly as `sloserve operator` runs it."""
    cp = cluster.control_plane
    argv = [
        sys.executable,
        "-m",
        "sloserve_operator.cli",
        "operator",
        "--standalone",
        "--namespace",
        namespace,
        "--metrics-port",
        str(free_port()),
        "--liveness-port",
        "0",
    ]
    proc = ManagedProcess(
        "operator",
        argv,
        cp.logs_dir / "operator.log",
        env=cp.env(),
        cwd=REPO_ROOT,
    )
    try:
        time.sleep(1.0)
        if not proc.running():
            raise proc.failure("exited at start")
        yield proc
    finally:
        proc.stop()


@dataclass
class View:
    """Latest observations, refreshed by a background task."""

    service: JsonObj | None = None
    pods: list[JsonObj] = field(default_factory=list)
    events: list[JsonObj] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    via: str = "-"
    """``router`` or ``engines``: what the load goes through now."""


def observe(api: KubeApi, namespace: str, name: str, kubelet: ProcessKubelet, view: View) -> None:
    base = f"/apis/sloserve.io/v1alpha1/namespaces/{namespace}/llmservices/{name}"
    with contextlib.suppress(KubeApiError):
        view.service = api.get(base)
    pods = api.get(
        f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": f"{SERVICE_LABEL}={name}"}
    )
    view.pods = pods["items"]
    serving = {
        pod["metadata"]["name"]
        for pod in view.pods
        if kubelet.running(namespace, pod["metadata"]["name"])
    }
    view.targets, view.via = load_targets(view.pods, serving)
    events = api.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    view.events = [
        e for e in events if e.get("involvedObject", {}).get("kind") in ("LLMService", "Deployment")
    ]


async def live(
    api: KubeApi, args: argparse.Namespace, name: str, model: str, kubelet: ProcessKubelet
) -> None:
    """Drive load and show status until the duration ends or SIGINT/SIGTERM arrives."""
    view, stats, stop = View(), LoadStats(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.scale_to_zero:
        episode = drive_zero_episode(
            lambda: view.targets, model, stats, stop, lambda: at_zero(view.service, view.pods)
        )
        load = asyncio.create_task(episode)
    else:
        profile = LoadProfile(low_rps=args.low_rps, peak_rps=args.peak_rps, period_s=args.period)
        load = asyncio.create_task(drive_load(lambda: view.targets, model, stats, stop, profile))
    deadline = time.monotonic() + args.duration if args.duration > 0 else float("inf")

    async def watch(show: Callable[[], None]) -> None:
        """Observe once a second and show what changed, until the deadline or a stop."""
        while time.monotonic() < deadline and not stop.is_set():
            await asyncio.to_thread(observe, api, args.namespace, name, kubelet, view)
            show()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    try:
        if console.is_terminal:
            first = render_status(None, [], stats, [])
            with Live(first, console=console, refresh_per_second=2) as screen:
                await watch(
                    lambda: screen.update(
                        render_status(view.service, view.pods, stats, view.events, view.via)
                    )
                )
        else:
            await watch(PlainLines(view, stats, args.interval).show)
    finally:
        stop.set()
        await load


@dataclass
class PlainLines:
    """What a pipe or a log file gets: each new event once, and a status line every
    ``interval`` seconds, flushed line by line."""

    view: View
    stats: LoadStats
    interval: float
    seen: set[str] = field(default_factory=set)
    next_line: float = field(default_factory=time.monotonic)

    def show(self) -> None:
        for event in self.view.events:
            uid = str(event.get("metadata", {}).get("uid", id(event)))
            if uid not in self.seen:
                self.seen.add(uid)
                _plain(event_line(time.time(), event))
        if time.monotonic() >= self.next_line:
            view = self.view
            _plain(status_line(time.time(), view.service, view.pods, self.stats, view.via))
            self.next_line += max(self.interval, 0.5)


def _plain(line: str) -> None:
    print(line, flush=True)


def _example(path: Path) -> JsonObj:
    doc: JsonObj = yaml.safe_load(path.read_text())
    if doc.get("kind") != "LLMService":
        raise ValueError(f"{path} is not an LLMService manifest")
    return doc


def as_simulated(manifest: JsonObj) -> JsonObj:
    """The manifest with ``spec.engine.simulated: true``: the dev cluster has no GPUs, and
    status and ``kubectl describe`` should say the engines are simulated, not pretend."""
    spec = dict(manifest.get("spec") or {})
    spec["engine"] = {**(spec.get("engine") or {}), "simulated": True}
    return {**manifest, "spec": spec}


def _run_demo(args: argparse.Namespace, config_problems: list[str]) -> int:
    if config_problems:
        console.print("[red]" + "; ".join(config_problems))
        return 2
    _, config = cluster_from_args(args)
    manifest = _example(args.example)
    testenv = ensure_testenv()
    nodes = default_gpu_nodes(args.nodes, args.gpu_type, args.gpus_per_node)
    own_workdir = config.workdir is None
    if own_workdir:
        config.workdir = Path(tempfile.mkdtemp(prefix="sloserve-demo-"))
    try:
        return _run_cluster(args, config, manifest, testenv, nodes)
    finally:
        _clean_workdir(config.workdir, remove=own_workdir and not args.keep)


def _clean_workdir(workdir: Path | None, remove: bool) -> None:
    """Say where the logs were; remove the demo's own temp dir unless ``--keep`` was given."""
    if workdir is None:
        return
    if remove:
        shutil.rmtree(workdir, ignore_errors=True)
        console.print(f"removed the working directory {workdir} (--keep keeps it)")
    else:
        console.print(f"kept the working directory {workdir} (logs, kubeconfig)")


def _run_cluster(
    args: argparse.Namespace,
    config: ControlPlaneConfig,
    manifest: JsonObj,
    testenv: Testenv,
    nodes: list[GpuNodeSpec],
) -> int:
    started = time.monotonic()
    with dev_cluster(testenv, nodes, config) as cluster:
        cp = cluster.control_plane
        console.print(
            f"[green]control plane up[/] in {time.monotonic() - started:.1f} s at {cp.server}; "
            f"{len(nodes)} simulated {args.gpu_type} nodes x {args.gpus_per_node} GPUs; "
            f"KUBECONFIG={cp.kubeconfig}; logs in {cp.logs_dir}"
        )
        console.print(cluster.kubectl("get", "nodes", "-L", "sloserve.io/gpu-type").stdout)
        if not operator_available():
            console.print(
                f"[yellow]the operator ({OPERATOR_MODULE}) does not exist yet: the demo stops "
                "after the cluster and its GPU nodes are up. Cleaning up."
            )
            return 0
        kubelet_log = cp.logs_dir / "process-kubelet.log"
        with ProcessKubelet(
            cp.server, cp.pki, cp.workdir / "pods", log_path=kubelet_log
        ) as kubelet:
            install_crds(cluster, args.crds)
            cluster.kubectl("create", "namespace", args.namespace)
            with operator_process(cluster, args.namespace):
                applied = cp.workdir / "llmservice.yaml"
                body = as_simulated(manifest)
                if args.scale_to_zero:
                    body = with_scale_to_zero(body)
                applied.write_text(yaml.safe_dump(body, sort_keys=False))
                cluster.kubectl("apply", "-n", args.namespace, "-f", str(applied))
                _plain(f"applied {args.example} with spec.engine.simulated: true (no GPUs here)")
                if args.scale_to_zero:
                    _plain(
                        f"scale to zero: minReplicas 0, scaleToZeroAfterS {ZERO_IDLE_S}, "
                        f"engines start in {ZERO_STARTUP_DELAY_S} s; warm load, idle until "
                        "zero, then a burst at zero (repeated)"
                    )
                name = manifest["metadata"]["name"]
                _plain(next_steps(cp.kubeconfig, testenv.bin_dir, args.namespace, name, cp.workdir))
                model = (
                    manifest["spec"]["model"].get("servedName") or manifest["spec"]["model"]["name"]
                )
                try:
                    asyncio.run(live(cp.api, args, name, model, kubelet))
                finally:
                    interrupt_on_sigterm()  # the event loop's handlers are gone with it
                    console.print("cleaning up")
                    cluster.kubectl(
                        "delete",
                        "-n",
                        args.namespace,
                        "-f",
                        str(args.example),
                        "--wait=false",
                        check=False,
                    )
    console.print("[green]demo stopped; every process it started has exited")
    return 0


def run(args: argparse.Namespace) -> int:
    interrupt_on_sigterm()
    problems, _ = cluster_from_args(args)
    try:
        return _run_demo(args, problems)
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    except (
        TestenvMissingError,
        PortInUseError,
        ProcessFailedError,
        TimeoutError,
        RuntimeError,
        ValueError,
        OSError,
        subprocess.CalledProcessError,
    ) as exc:
        console.print(f"[red]sloserve demo: {exc}")
        return 1
