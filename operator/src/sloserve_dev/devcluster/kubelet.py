"""The process kubelet: a stand-in for a real kubelet plus container runtime.

kwok makes pods of simulated nodes Running and gives them loopback pod IPs, but runs nothing.
This helper watches those pods and, for each Running pod, starts the pod's own program as a
local process bound to the pod IP, with the pod's ConfigMap and Secret volumes written to a
per-pod directory: engine and router pods, the chart's operator pods (images.py: the program of
an image comes from this repository's Dockerfile), any container with an explicit command. A
pod it cannot run (an unknown image, a program missing here) is reported as not running
(``NotRunLocally``), never left looking Running. The operator, the autoscaler and users then
reach engines over real HTTP at pod IPs, as in a cluster. What it does not simulate: image
pulls, liveness/startup probes, resource limits, ``envFrom``, projected/emptyDir/hostPath
volumes, exec/logs APIs.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import httpx

from sloserve_dev.devcluster.credentials import write_service_account_kubeconfig
from sloserve_dev.devcluster.images import KNOWN_IMAGES, image_config
from sloserve_dev.devcluster.kubeapi import JsonObj, KubeApi, KubeApiError
from sloserve_dev.devcluster.pki import Pki
from sloserve_dev.devcluster.podstatus import (
    NOT_RUN_REASON,
    crashed_status,
    not_run_event,
    not_run_status,
    restarted_status,
)
from sloserve_dev.devcluster.processes import ManagedProcess

log = logging.getLogger(__name__)

ENGINE_SELECTOR = "app.kubernetes.io/name in (sloserve-engine,sloserve-router)"
"""Engine pods, and router pods (``sloserve-router`` from the same image): what a kubelet
on a cluster shared by several tests runs. The default (``""``) is every pod."""
ENGINE_EXECUTABLE = "sloserve-engine"
ROUTER_EXECUTABLE = "sloserve-router"
ROUTER_ARGV = (sys.executable, "-m", "sloserve_engine.router.cli")
OPERATOR_EXECUTABLE = "sloserve"
OPERATOR_ARGV = (sys.executable, "-m", "sloserve_operator.cli")
"""The ``sloserve`` console script's program (``operator`` and the other subcommands)."""
KUBECONFIG_FILE = "kubeconfig"
ENGINES_DNS_FLAG = "--engines-dns"
ENGINES_FILE = "engines"
"""In a router pod's directory: the ready engines its headless Service would resolve to
(there is no cluster DNS here), kept current by this kubelet and read by ``--engines-file``."""
SERVICE_LABEL = "sloserve.io/service"
SIMULATED_FLAG = "--simulated"
HOST_FLAGS = ("--host", "--bind")
PYTHON_EXECUTABLES = ("python", "python3", sys.executable)
MAX_GRACE_S = 10.0
MAX_RESTART_BACKOFF_S = 30.0
REASSERT_AFTER_S = 2.0
"""Grace for our own status patch to come back through the watch before re-asserting."""
WATCH_TIMEOUT_S = 2
"""Short watches (resumed from the last resourceVersion) let stop() return promptly and never
leave a watch open that would hold up the apiserver's own shutdown."""


def default_engine_argv() -> list[str]:
    """The engine of this venv: its console script, else the module (same program)."""
    script = Path(sys.executable).parent / ENGINE_EXECUTABLE
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "sloserve_engine.server.cli"]


# ---------------------------------------------------------------- pure pod -> process rules


@dataclass(frozen=True)
class VolumeRef:
    """A ConfigMap or Secret volume mounted into the first container."""

    volume: str
    kind: str  # "configmaps" | "secrets" (the API resource)
    source: str
    mount_path: str
    items: tuple[tuple[str, str], ...] | None = None
    optional: bool = False


@dataclass(frozen=True)
class ReadinessProbe:
    """The first container's ``httpGet`` readiness probe (what engine pods use)."""

    path: str
    port: int
    period_s: float
    failure_threshold: int
    timeout_s: float = 1.0


@dataclass(frozen=True)
class PodProcessSpec:
    """Everything needed to run one pod's first container as a local process."""

    uid: str
    namespace: str
    name: str
    pod_ip: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    volumes: tuple[VolumeRef, ...]
    grace_s: float
    readiness: ReadinessProbe | None = None
    service: str = ""
    """The pod's ``sloserve.io/service`` label: a router's engines are that service's."""
    container: str = ""
    """The first container's name: its ``containerStatuses`` entry carries ``ready`` (what
    ``kubectl get pods`` shows as READY)."""
    service_account: str | None = None
    """The ServiceAccount whose token the pod gets (None: ``automountServiceAccountToken:
    false``, so the process gets no credentials at all)."""

    @property
    def is_router(self) -> bool:
        return bool(self.argv) and PurePosixPath(self.argv[0]).name == ROUTER_EXECUTABLE

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_should_run(pod: JsonObj, nodes: set[str]) -> bool:
    """A real kubelet runs a pod's containers while it is Running on its node."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    return (
        spec.get("nodeName") in nodes
        and status.get("phase") == "Running"
        and bool(status.get("podIP"))
        and not meta.get("deletionTimestamp")
    )


def _volume_refs(pod: JsonObj, container: JsonObj) -> tuple[VolumeRef, ...]:
    volumes = {v["name"]: v for v in pod.get("spec", {}).get("volumes") or []}
    refs: list[VolumeRef] = []
    for mount in container.get("volumeMounts") or []:
        vol = volumes.get(mount.get("name", ""), {})
        for key, kind, name_field in (
            ("configMap", "configmaps", "name"),
            ("secret", "secrets", "secretName"),
        ):
            if key in vol:
                src = vol[key]
                items = src.get("items")
                refs.append(
                    VolumeRef(
                        volume=vol["name"],
                        kind=kind,
                        source=src.get(name_field, ""),
                        mount_path=mount["mountPath"].rstrip("/") or "/",
                        items=tuple((i["key"], i["path"]) for i in items) if items else None,
                        optional=bool(src.get("optional", False)),
                    )
                )
    return tuple(refs)


def _container_env(pod: JsonObj, container: JsonObj) -> tuple[tuple[str, str], ...]:
    fields = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"].get("uid", ""),
        "spec.nodeName": pod.get("spec", {}).get("nodeName", ""),
        "status.podIP": pod.get("status", {}).get("podIP", ""),
    }
    env: list[tuple[str, str]] = []
    for var in container.get("env") or []:
        if "value" in var:
            env.append((var["name"], str(var["value"])))
        elif path := var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath"):
            if path in fields:
                env.append((var["name"], fields[path]))
        else:
            log.warning(
                "process kubelet: env %s of %s is not supported; skipped",
                var["name"],
                pod["metadata"]["name"],
            )
    return tuple(env)


def readiness_probe(container: JsonObj) -> ReadinessProbe | None:
    """The container's httpGet readiness probe with a named port resolved, if it has one."""
    probe = container.get("readinessProbe") or {}
    http = probe.get("httpGet")
    if not http:
        return None
    port = http.get("port")
    if isinstance(port, str) and not port.isdigit():
        named = [p["containerPort"] for p in container.get("ports") or [] if p.get("name") == port]
        if not named:
            return None
        port = named[0]
    return ReadinessProbe(
        path=http.get("path", "/"),
        port=int(port),
        period_s=float(probe.get("periodSeconds", 10)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
        timeout_s=float(probe.get("timeoutSeconds", 1)),
    )


def readiness_after_probe(
    ok: bool, was_ready: bool, failures: int, threshold: int
) -> tuple[bool, int]:
    """(ready, consecutive failures) after one probe: a kubelet's readiness rule."""
    if ok:
        return True, 0
    failures += 1
    return was_ready and failures < threshold, failures


def pod_ready_condition(pod: JsonObj) -> bool | None:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return None


@dataclass(frozen=True)
class NotRunnable:
    """Why a pod cannot run here; reported in its status and an Event (reason NotRunLocally)."""

    message: str
    reason: str = NOT_RUN_REASON


def pod_process_spec(pod: JsonObj) -> PodProcessSpec | NotRunnable:
    """The first container as a process spec, or why it cannot run here.

    The program is the container's ``command``, else the ENTRYPOINT of a known image
    (images.py); ``args`` replace the image's CMD, as in Kubernetes.
    """
    meta, spec = pod["metadata"], pod.get("spec", {})
    container = (spec.get("containers") or [{}])[0]  # the API requires at least one
    image = str(container.get("image", ""))
    config = image_config(image)
    if container.get("command"):
        argv = (*container["command"], *(container.get("args") or ()))
    elif config is not None and config.entrypoint:
        argv = config.argv(None, container.get("args"))
    else:
        return NotRunnable(
            f"image {image!r} cannot run on the dev cluster: there is no container runtime; "
            f"the process kubelet runs the images built from this repository "
            f"({', '.join(KNOWN_IMAGES)}) and containers that give a command"
        )
    grace = float(spec.get("terminationGracePeriodSeconds", 30))
    automount = spec.get("automountServiceAccountToken") is not False
    return PodProcessSpec(
        uid=meta["uid"],
        namespace=meta["namespace"],
        name=meta["name"],
        pod_ip=pod["status"]["podIP"],
        argv=argv,
        env=_container_env(pod, container),
        volumes=_volume_refs(pod, container),
        grace_s=min(grace, MAX_GRACE_S),
        readiness=readiness_probe(container),
        service=str((meta.get("labels") or {}).get(SERVICE_LABEL, "")),
        container=str(container.get("name", "")),
        service_account=(spec.get("serviceAccountName") or "default") if automount else None,
    )


def _rewrite_path(value: str, mounts: Mapping[str, Path]) -> str:
    for mount_path, local in mounts.items():
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(local) + value[len(mount_path) :]
    return value


def _rewrite_value(arg: str, mounts: Mapping[str, Path]) -> str:
    if arg.startswith("-") and "=" in arg:
        flag, value = arg.split("=", 1)
        return f"{flag}={_rewrite_path(value, mounts)}"
    return _rewrite_path(arg, mounts)


def engines_dns_port(argv: Sequence[str]) -> int | None:
    """The port of a router's ``--engines-dns name:port`` (None when it has none)."""
    for i, arg in enumerate(argv):
        value = None
        if arg == ENGINES_DNS_FLAG and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(ENGINES_DNS_FLAG + "="):
            value = arg.split("=", 1)[1]
        if value is not None:
            port = value.rpartition(":")[2]
            return int(port) if port.isdigit() else None
    return None


def engine_addresses(pods: Sequence[JsonObj], namespace: str, service: str, port: int) -> str:
    """What the service's headless Service resolves to: its Ready engine pods' IPs."""
    lines = sorted(
        f"{p['status']['podIP']}:{port}"
        for p in pods
        if p["metadata"].get("namespace") == namespace
        and (p["metadata"].get("labels") or {}).get(SERVICE_LABEL) == service
        and (p["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == ENGINE_EXECUTABLE
        and not p["metadata"].get("deletionTimestamp")
        and p.get("status", {}).get("podIP")
        and pod_ready_condition(p)
    )
    return "".join(f"{line}\n" for line in lines)


def rewrite_argv(
    argv: Sequence[str],
    pod_ip: str,
    mounts: Mapping[str, Path],
    engine_argv: Sequence[str],
    engines_file: Path | None = None,
) -> list[str]:
    """Turn a container command into a local command line for this pod.

    ``sloserve-engine`` becomes this venv's engine with ``--simulated``; ``sloserve`` and
    ``sloserve-router`` this venv's programs; ``python`` becomes this interpreter;
    ``--host``/``--bind`` values become the pod IP (added for the engine and ``sloserve
    operator`` if absent, since their default 0.0.0.0 would collide with every other pod);
    arguments under a volume's mountPath point into the pod's materialised volume directory.
    """
    if not argv:
        raise ValueError("empty container command")
    exe, rest = argv[0], list(argv[1:])
    program = PurePosixPath(exe).name
    is_engine = program == ENGINE_EXECUTABLE
    binds_all = is_engine or (program == OPERATOR_EXECUTABLE and rest[:1] == ["operator"])
    out: list[str]
    if is_engine:
        out = [*engine_argv]
        if SIMULATED_FLAG not in rest:
            out.append(SIMULATED_FLAG)
    elif program == ROUTER_EXECUTABLE:
        out = [*ROUTER_ARGV]
    elif program == OPERATOR_EXECUTABLE:
        out = [*OPERATOR_ARGV]
    elif exe in PYTHON_EXECUTABLES:
        out = [sys.executable]
    else:
        out = [exe]
    has_host = False
    i = 0
    while i < len(rest):
        arg = rest[i]
        flag = arg.split("=", 1)[0]
        if arg == "--":
            out += rest[i:]  # extra arguments for vllm serve: passed through untouched
            break
        if flag == ENGINES_DNS_FLAG and engines_file is not None:
            out += ["--engines-file", str(engines_file)]
            i += 1 if "=" not in arg else 0  # skip the name:port
        elif flag in HOST_FLAGS:
            has_host = True
            if "=" in arg:
                out.append(f"{flag}={pod_ip}")
            else:
                out += [arg, pod_ip]
                i += 1  # skip the original value
        else:
            out.append(_rewrite_value(arg, mounts))
        i += 1
    if binds_all and not has_host:
        cut = out.index("--") if "--" in out else len(out)
        out[cut:cut] = ["--host", pod_ip]
    return out


def volume_files(ref: VolumeRef, obj: JsonObj) -> dict[str, bytes]:
    """Files of a ConfigMap/Secret volume, keyed by relative path (``items`` respected)."""
    files: dict[str, bytes] = {}
    for key, value in (obj.get("data") or {}).items():
        files[key] = base64.b64decode(value) if ref.kind == "secrets" else value.encode()
    for key, value in (obj.get("binaryData") or {}).items():
        files[key] = base64.b64decode(value)
    if ref.items is None:
        return files
    return {path: files[key] for key, path in ref.items if key in files}


# ---------------------------------------------------------------- side effects


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _executable_exists(program: str) -> bool:
    if os.sep in program:
        return os.access(program, os.X_OK)
    return shutil.which(program) is not None


def _sync_dir(directory: Path, files: Mapping[str, bytes]) -> bool:
    """Make ``directory`` hold exactly ``files``; atomic per file. True if anything changed."""
    changed = False
    directory.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        target = directory / rel
        if target.is_file() and target.read_bytes() == content:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(content)
        tmp.replace(target)
        changed = True
    for existing in directory.rglob("*"):
        if existing.is_file() and str(existing.relative_to(directory)) not in files:
            existing.unlink()
            changed = True
    return changed


@dataclass
class PodProcess:
    """A pod's local process and where its files live."""

    spec: PodProcessSpec
    directory: Path
    proc: ManagedProcess | None = None
    restarts: int = 0
    next_start: float = 0.0
    ready: bool = False
    probe_failures: int = 0
    next_probe: float = 0.0
    observed_ready: bool | None = None
    reported_at: float = 0.0

    @property
    def log_path(self) -> Path:
        return self.directory / "container.log"

    def mounts(self) -> dict[str, Path]:
        return {v.mount_path: self.directory / "volumes" / v.volume for v in self.spec.volumes}


@dataclass
class ProcessKubelet:
    """Watch pods on kwok nodes and run each one as a local process at its pod IP."""

    server: str
    pki: Pki
    workdir: Path
    selector: str = ""
    """Label selector of the pods it runs; empty: every pod on a kwok node."""
    engine_argv: list[str] = field(default_factory=default_engine_argv)
    volume_refresh_s: float = 2.0
    log_path: Path | None = None
    """Also write this kubelet's INFO log (starts, stops, readiness) to this file."""
    pods: dict[str, PodProcess] = field(init=False, default_factory=dict)
    _seen: dict[str, JsonObj] = field(init=False, default_factory=dict)
    _nodes: set[str] = field(init=False, default_factory=set)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _changed: threading.Event = field(init=False, default_factory=threading.Event)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(init=False, default_factory=list)
    _log_handler: logging.Handler | None = field(init=False, default=None)
    _not_runnable: dict[str, str] = field(init=False, default_factory=dict)
    """uid -> the reason already reported for a pod that cannot run here."""

    def start(self) -> ProcessKubelet:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.log_path is not None:
            self._log_handler = logging.FileHandler(self.log_path)
            self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            log.addHandler(self._log_handler)
            log.setLevel(logging.INFO)
        for target, name in ((self._watch_loop, "watch"), (self._run_loop, "run")):
            thread = threading.Thread(target=target, name=f"process-kubelet-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop the loops, then every process this kubelet started."""
        self._stop.set()
        self._changed.set()
        for thread in self._threads:
            thread.join(timeout=WATCH_TIMEOUT_S + 10.0)
        with self._lock:
            for pod in self.pods.values():  # all at once: engines take seconds to drain
                if pod.proc is not None:
                    pod.proc.terminate()
            for pod in self.pods.values():
                self._stop_process(pod)
            self.pods.clear()
        if self._log_handler is not None:
            log.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    def __enter__(self) -> ProcessKubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def running(self, namespace: str, name: str) -> PodProcess | None:
        """The live process record of a pod, if its process is up."""
        with self._lock:
            for pod in self.pods.values():
                alive = pod.proc is not None and pod.proc.running()
                if alive and pod.spec.namespace == namespace and pod.spec.name == name:
                    return pod
        return None

    # -- watch: keeps self._seen equal to the API's view of matching pods

    def _watch_loop(self) -> None:
        api = KubeApi(self.server, self.pki)
        try:
            while not self._stop.is_set():
                try:
                    self._list_and_watch(api)
                except Exception as exc:  # the API may restart or time out; relist
                    log.info("process kubelet: watch restarted after %s", exc)
                    self._stop.wait(1.0)
        finally:
            api.close()

    def _list_and_watch(self, api: KubeApi) -> None:
        listing = api.get("/api/v1/pods", {"labelSelector": self.selector})
        with self._lock:
            self._seen = {p["metadata"]["uid"]: p for p in listing.get("items", [])}
        self._changed.set()
        version = listing["metadata"]["resourceVersion"]
        while not self._stop.is_set():
            params = {
                "labelSelector": self.selector,
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
            }
            for event in api.watch("/api/v1/pods", params, WATCH_TIMEOUT_S):
                obj = event["object"]
                if event["type"] == "ERROR":
                    return  # e.g. 410 Gone: relist
                version = obj["metadata"]["resourceVersion"]
                if event["type"] == "BOOKMARK":
                    continue
                with self._lock:
                    if event["type"] == "DELETED":
                        self._seen.pop(obj["metadata"]["uid"], None)
                    else:
                        self._seen[obj["metadata"]["uid"]] = obj
                self._changed.set()
                if self._stop.is_set():
                    return

    # -- run: starts/stops/restarts processes and refreshes volumes

    def _run_loop(self) -> None:
        api = KubeApi(self.server, self.pki)
        last_refresh = 0.0
        try:
            while not self._stop.is_set():
                self._changed.wait(0.5)
                self._changed.clear()
                if self._stop.is_set():
                    break
                refresh = time.monotonic() - last_refresh >= self.volume_refresh_s
                try:
                    self._reconcile(api, refresh)
                except Exception:
                    log.exception("process kubelet: reconcile failed; retrying")
                if refresh:
                    last_refresh = time.monotonic()
        finally:
            api.close()

    def _kwok_nodes(self, api: KubeApi, wanted: set[str]) -> set[str]:
        if wanted - self._nodes:
            nodes = api.get("/api/v1/nodes").get("items", [])
            self._nodes = {
                n["metadata"]["name"]
                for n in nodes
                if (n["metadata"].get("annotations") or {}).get("kwok.x-k8s.io/node") == "fake"
            }
        return self._nodes

    def _reconcile(self, api: KubeApi, refresh_volumes: bool) -> None:
        with self._lock:
            seen = list(self._seen.values())
        nodes = self._kwok_nodes(api, {p.get("spec", {}).get("nodeName", "") for p in seen})
        desired: dict[str, PodProcessSpec] = {}
        observed: dict[str, bool | None] = {}
        for pod in seen:
            if pod_should_run(pod, nodes):
                spec = pod_process_spec(pod)
                if isinstance(spec, NotRunnable):
                    self._report_not_runnable(api, pod, spec)
                else:
                    desired[spec.uid] = spec
                    observed[spec.uid] = pod_ready_condition(pod)
        alive = {p["metadata"]["uid"] for p in seen}
        self._not_runnable = {u: m for u, m in self._not_runnable.items() if u in alive}
        with self._lock:
            for uid in [u for u in self.pods if u not in desired]:
                self._stop_process(self.pods.pop(uid))
            for uid, spec in desired.items():
                if uid not in self.pods:
                    directory = self.workdir / f"{spec.namespace}_{spec.name}_{uid[:8]}"
                    self.pods[uid] = PodProcess(spec, directory)
                self.pods[uid].observed_ready = observed[uid]
            records = list(self.pods.values())
        for record in records:
            if record.spec.is_router:
                self._publish_engines(record, seen)
            self._tend(api, record, refresh_volumes or record.proc is None)

    def _publish_engines(self, pod: PodProcess, seen: Sequence[JsonObj]) -> None:
        """Keep a router pod's engines file equal to its service's Ready engine pods."""
        port = engines_dns_port(pod.spec.argv)
        if port is None:
            return
        text = engine_addresses(seen, pod.spec.namespace, pod.spec.service, port)
        path = pod.directory / ENGINES_FILE
        if path.exists() and path.read_text() == text:
            return
        pod.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)

    def _tend(self, api: KubeApi, pod: PodProcess, refresh_volumes: bool) -> None:
        if refresh_volumes and not self._materialise(api, pod):
            return  # a referenced ConfigMap/Secret is missing: like ContainerCreating
        if pod.proc is not None and pod.proc.running():
            self._probe(api, pod)
            self._reassert_ready(api, pod)
            return
        if pod.proc is not None:  # exited on its own: restart with backoff, like a kubelet
            log.warning(
                "process kubelet: %s exited with %s; restarting",
                pod.spec.key,
                pod.proc.popen.returncode,
            )
            code = pod.proc.popen.returncode
            pod.restarts += 1
            backoff = min(2.0**pod.restarts, MAX_RESTART_BACKOFF_S)
            pod.next_start = time.monotonic() + backoff
            pod.proc = None
            if pod.ready:
                self._report_ready(api, pod, False)
            if pod.spec.container:  # kwok still says "running": say it is not
                status = crashed_status(
                    pod.spec.container, code, pod.restarts, backoff, str(pod.log_path), _now()
                )
                self._patch_pod_status(api, pod.spec.namespace, pod.spec.name, status)
        if time.monotonic() < pod.next_start or pod.spec.uid in self._not_runnable:
            return
        engines = pod.directory / ENGINES_FILE if pod.spec.is_router else None
        argv = rewrite_argv(pod.spec.argv, pod.spec.pod_ip, pod.mounts(), self.engine_argv, engines)
        if not _executable_exists(argv[0]):
            with self._lock:
                raw = self._seen.get(pod.spec.uid)
            if raw is not None:
                missing = NotRunnable(f"the program {argv[0]!r} is not on this machine's PATH")
                self._report_not_runnable(api, raw, missing)
            return
        env = {**os.environ, **dict(pod.spec.env)}
        env.pop("KUBECONFIG", None)  # never the kubelet's own (admin) credentials
        if pod.spec.service_account is not None:
            kubeconfig = pod.directory / KUBECONFIG_FILE
            if not kubeconfig.is_file() and not self._credentials(api, pod, kubeconfig):
                return
            env["KUBECONFIG"] = str(kubeconfig)
        with self._lock:
            if self._stop.is_set() or self.pods.get(pod.spec.uid) is not pod:
                return
            pod.proc = ManagedProcess(pod.spec.key, argv, pod.log_path, env=env, cwd=pod.directory)
        if pod.restarts and pod.spec.container:
            status = restarted_status(pod.spec.container, pod.restarts, _now())
            self._patch_pod_status(api, pod.spec.namespace, pod.spec.name, status)
        if pod.spec.readiness is None:
            pod.ready = True  # no probe: ready while running, as kwok already reports
        else:  # kwok said Ready at once; the probe decides now
            self._report_ready(api, pod, False)
        log.info(
            "process kubelet: started %s (pid %d) at %s: %s",
            pod.spec.key,
            pod.proc.pid,
            pod.spec.pod_ip,
            " ".join(argv),
        )

    def _probe(self, api: KubeApi, pod: PodProcess) -> None:
        """Run the readiness probe when due; report changes in the pod's Ready condition.

        Until the first success it probes every 0.5 s (faster than a kubelet's periodSeconds,
        so tests and the demo do not wait), afterwards every periodSeconds (at most 5 s).
        """
        probe = pod.spec.readiness
        if probe is None or time.monotonic() < pod.next_probe:
            return
        url = f"http://{pod.spec.pod_ip}:{probe.port}{probe.path}"
        try:
            code = httpx.get(url, timeout=probe.timeout_s).status_code
            ok = 200 <= code < 400
            outcome = f"HTTP {code}"
        except httpx.HTTPError as exc:
            ok, outcome = False, type(exc).__name__
        if not ok:
            log.info("process kubelet: %s readiness probe %s: %s", pod.spec.key, url, outcome)
        ready, pod.probe_failures = readiness_after_probe(
            ok, pod.ready, pod.probe_failures, probe.failure_threshold
        )
        pod.next_probe = time.monotonic() + (min(probe.period_s, 5.0) if ready else 0.5)
        if ready != pod.ready:
            self._report_ready(api, pod, ready)

    def _reassert_ready(self, api: KubeApi, pod: PodProcess) -> None:
        """Own the Ready condition like a kubelet's status manager.

        Others write it too: the node lifecycle controller marks pods NotReady when a node
        misses heartbeats, and nobody else would set them Ready again.
        """
        settled = time.monotonic() - pod.reported_at > REASSERT_AFTER_S
        if settled and pod.observed_ready is not None and pod.observed_ready != pod.ready:
            self._report_ready(api, pod, pod.ready)

    def _report_ready(self, api: KubeApi, pod: PodProcess, ready: bool) -> None:
        now = _now()
        status = "True" if ready else "False"
        conditions = [
            {"type": kind, "status": status, "lastTransitionTime": now}
            for kind in ("Ready", "ContainersReady")
        ]
        body: JsonObj = {"status": {"conditions": conditions}}
        if pod.spec.container:
            body["status"]["containerStatuses"] = [{"name": pod.spec.container, "ready": ready}]
        self._patch_pod_status(api, pod.spec.namespace, pod.spec.name, body)
        pod.ready = ready
        pod.reported_at = time.monotonic()
        log.info("process kubelet: %s Ready=%s", pod.spec.key, status)

    def _patch_pod_status(self, api: KubeApi, namespace: str, name: str, body: JsonObj) -> None:
        try:
            api.patch_status(f"/api/v1/namespaces/{namespace}/pods/{name}/status", body)
        except KubeApiError as exc:
            if exc.status != 404:  # a pod deleted meanwhile needs no status
                raise

    def _credentials(self, api: KubeApi, pod: PodProcess, path: Path) -> bool:
        """Write the pod's ServiceAccount kubeconfig (credentials.py); False while it waits."""
        account = pod.spec.service_account or "default"  # only called when it has one
        try:
            write_service_account_kubeconfig(
                api, self.server, self.pki, pod.spec.namespace, account, path
            )
        except KubeApiError as exc:
            if exc.status != 404:
                raise
            log.info("process kubelet: %s waits for serviceaccount %s", pod.spec.key, account)
            return False
        return True

    def _report_not_runnable(self, api: KubeApi, pod: JsonObj, why: NotRunnable) -> None:
        """Once per pod: unready, container waiting with the reason, one Warning Event."""
        meta = pod["metadata"]
        if self._not_runnable.get(meta["uid"]) == why.message:
            return
        container = (pod.get("spec", {}).get("containers") or [{}])[0]
        now = _now()
        status = not_run_status(
            container.get("name", ""), container.get("image", ""), why.reason, why.message, now
        )
        self._patch_pod_status(api, meta["namespace"], meta["name"], status)
        try:
            api.create(
                f"/api/v1/namespaces/{meta['namespace']}/events",
                not_run_event(pod, why.reason, why.message, now),
            )
        except KubeApiError as exc:
            if exc.status not in (403, 404):  # the namespace is going away
                raise
        self._not_runnable[meta["uid"]] = why.message
        log.warning(
            "process kubelet: %s/%s not run: %s", meta["namespace"], meta["name"], why.message
        )

    def _materialise(self, api: KubeApi, pod: PodProcess) -> bool:
        for ref in pod.spec.volumes:
            path = f"/api/v1/namespaces/{pod.spec.namespace}/{ref.kind}/{ref.source}"
            try:
                obj = api.get(path)
            except KubeApiError as exc:
                if exc.status == 404 and ref.optional:
                    obj = {}
                elif exc.status == 404:
                    log.info("process kubelet: %s waits for %s", pod.spec.key, path)
                    return False
                else:
                    raise
            _sync_dir(pod.directory / "volumes" / ref.volume, volume_files(ref, obj))
        return True

    def _stop_process(self, pod: PodProcess) -> None:
        if pod.proc is not None:
            code = pod.proc.stop(pod.spec.grace_s)
            log.info("process kubelet: stopped %s (exit %s)", pod.spec.key, code)
            pod.proc = None
        with contextlib.suppress(OSError):
            shutil.rmtree(pod.directory / "volumes")
