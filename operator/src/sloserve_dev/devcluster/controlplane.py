"""Run etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on loopback.

Every component is the real upstream binary; only the kubelet is played by kwok (node and pod
status) and, for engine pods, by the process kubelet. All state lives in one temp dir that
holds the PKI, the kubeconfig, etcd's data and one log file per component.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from sloserve_dev.devcluster.kubeapi import KubeApi, write_kubeconfig
from sloserve_dev.devcluster.kwokstages import PodReadiness, write_stages
from sloserve_dev.devcluster.pki import SERVICE_CLUSTER_IP_RANGE, Pki, make_pki
from sloserve_dev.devcluster.podcidr import PodCidrLease, lease_pod_cidr
from sloserve_dev.devcluster.processes import (
    ManagedProcess,
    ensure_port_free,
    free_port,
    wait_until,
)
from sloserve_dev.devcluster.testenv import Testenv

LOOPBACK = "127.0.0.1"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE = "fake"


@dataclass
class ControlPlaneConfig:
    """Knobs of the local control plane; the defaults suit tests (random free ports)."""

    workdir: Path | None = None
    """Where PKI, kubeconfig, etcd data and logs go (a fresh temp dir when None)."""
    apiserver_port: int | None = None
    """Fixed apiserver port (a free one when None); fixed ports are checked before start."""
    pod_cidr: str | None = None
    """kwok's pod IP range. None: a free 127.X.0.0/16 (podcidr.py), so pod IPs are loopback
    addresses a local process can bind without root or network setup, never shared with
    another control plane on this machine."""
    ready_timeout_s: float = 120.0
    """Per-component readiness limit; generous because the machine's cores are shared."""
    keep_workdir: bool = True
    """Leave logs behind after stop() so failures can be read."""
    pod_readiness: PodReadiness = "probe"
    """``probe``: a pod whose container has a readinessProbe starts unready and becomes Ready
    when the process kubelet's probe passes, as under a real kubelet (no Ready flicker at
    start). ``instant``: kwok's default, every pod Ready at once; only for clusters where
    nothing runs the pods (kwokstages.py)."""


@dataclass
class ControlPlane:
    """A running control plane. Use as a context manager or call start()/stop()."""

    testenv: Testenv
    config: ControlPlaneConfig = field(default_factory=ControlPlaneConfig)
    workdir: Path = field(init=False)
    server: str = field(init=False, default="")
    kubeconfig: Path = field(init=False)
    pki: Pki = field(init=False)
    processes: list[ManagedProcess] = field(init=False, default_factory=list)
    _api: KubeApi | None = field(init=False, default=None)
    _cidr_lease: PodCidrLease | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.workdir = self.config.workdir or Path(tempfile.mkdtemp(prefix="sloserve-k8s-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = self.workdir / "kubeconfig"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def api(self) -> KubeApi:
        if self._api is None:
            raise RuntimeError("control plane not started")
        return self._api

    def env(self) -> dict[str, str]:
        """Environment for kubectl/helm/kopf children: our kubeconfig, our binaries first."""
        path = f"{self.testenv.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}

    def log_paths(self) -> list[Path]:
        return [p.log_path for p in self.processes]

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every component in dependency order; on any failure stop what was started."""
        missing = [
            name
            for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
            if not self.testenv.binary(name).is_file()
        ]
        if missing:
            raise FileNotFoundError(
                f"missing {', '.join(missing)} in {self.testenv.bin_dir}; run `make testenv`"
            )
        if self.config.apiserver_port is not None:
            ensure_port_free(self.config.apiserver_port, LOOPBACK, "kube-apiserver")
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise

    @property
    def pod_cidr(self) -> str:
        if self.config.pod_cidr is not None:
            return self.config.pod_cidr
        if self._cidr_lease is None:
            raise RuntimeError("control plane not started")
        return self._cidr_lease.cidr

    def _start_all(self) -> None:
        if self.config.pod_cidr is None:
            self._cidr_lease = lease_pod_cidr()
        self.pki = make_pki(self.workdir / "pki")
        etcd_client, etcd_peer = free_port(), free_port()
        api_port = self.config.apiserver_port or free_port()
        self.server = f"https://{LOOPBACK}:{api_port}"
        write_kubeconfig(self.kubeconfig, self.server, self.pki)
        self._api = KubeApi(self.server, self.pki)
        timeout = self.config.ready_timeout_s
        with httpx.Client(verify=False, timeout=2.0) as insecure:  # self-signed healthz certs

            def healthy(url: str) -> Callable[[], bool]:
                def probe() -> bool:
                    try:
                        return insecure.get(url).is_success
                    except httpx.HTTPError:
                        return False

                return probe

            etcd = self._spawn("etcd", self._etcd_args(etcd_client, etcd_peer))
            etcd_url = f"http://{LOOPBACK}:{etcd_client}"
            wait_until(healthy(f"{etcd_url}/health"), etcd, "healthy", timeout)

            apiserver = self._spawn("kube-apiserver", self._apiserver_args(etcd_url, api_port))
            wait_until(self.api.healthy, apiserver, "ready (/readyz)", timeout)

            self._spawn("kube-controller-manager", self._controller_manager_args())
            scheduler_port, kwok_port = free_port(), free_port()
            scheduler = self._spawn("kube-scheduler", self._scheduler_args(scheduler_port))
            stages = write_stages(
                self.testenv.kwok_stages,
                self.config.pod_readiness,
                self.workdir / "kwok-stages.yaml",
            )
            kwok = self._spawn(
                "kwok",
                self._kwok_args(kwok_port, stages),
                env={**self.env(), "HOME": str(self.workdir)},  # kwok reads ~/.kwok/kwok.yaml
            )
            sched_url = f"https://{LOOPBACK}:{scheduler_port}/healthz"
            wait_until(healthy(sched_url), scheduler, "healthy", timeout)
            wait_until(healthy(f"http://{LOOPBACK}:{kwok_port}/healthz"), kwok, "healthy", timeout)
        dead = [p for p in self.processes if not p.running()]
        if dead:
            raise dead[0].failure("exited during start-up")

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> ManagedProcess:
        proc = ManagedProcess(
            name,
            [str(self.testenv.binary(name)), *argv],
            self.logs_dir / f"{name}.log",
            env=env if env is not None else self.env(),
            cwd=self.workdir,
        )
        self.processes.append(proc)
        return proc

    def _etcd_args(self, client_port: int, peer_port: int) -> list[str]:
        client, peer = f"http://{LOOPBACK}:{client_port}", f"http://{LOOPBACK}:{peer_port}"
        return [
            f"--data-dir={self.workdir / 'etcd'}",
            "--unsafe-no-fsync=true",  # test data: durability costs I/O and buys nothing
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--log-level=warn",
        ]

    def _apiserver_args(self, etcd_url: str, port: int) -> list[str]:
        pki = self.pki
        return [
            f"--etcd-servers={etcd_url}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.apiserver_cert}",
            f"--tls-private-key-file={pki.apiserver_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-issuer={self.server}/",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            # No kubelet mounts service-account tokens here; without this plugin pods in a
            # brand-new namespace need not wait for the "default" service account.
            "--disable-admission-plugins=ServiceAccount",
            "--endpoint-reconciler-type=none",
        ]

    def _controller_manager_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            f"--service-account-private-key-file={self.pki.sa_key}",
            f"--root-ca-file={self.pki.ca_cert}",
            "--use-service-account-credentials=false",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
        ]

    def _scheduler_args(self, port: int) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={port}",
        ]

    def _kwok_args(self, port: int, stages: Path) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--config={stages}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector="
            f"{KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE}",
            f"--cidr={self.pod_cidr}",
            f"--node-ip={LOOPBACK}",
            f"--server-address={LOOPBACK}:{port}",
            # Renew node leases: without them the node lifecycle controller marks the nodes
            # NotReady every grace period (and their pods NotReady with them).
            "--node-lease-duration-seconds=40",
        ]

    def stop(self) -> None:
        """Stop only the processes this object started, newest first."""
        if self._api is not None:
            self._api.close()
            self._api = None
        for proc in reversed(self.processes):
            proc.stop()
        if self._cidr_lease is not None:  # only after every pod process is gone
            self._cidr_lease.release()
        if not self.config.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
