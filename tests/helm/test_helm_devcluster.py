"""The Helm install of docs/operations.md, run literally on `sloserve testenv up`.

The commands come from the page itself (the block under "## Install"), so page and test
cannot drift apart. They run in bash after the two `export` lines `testenv up` prints, as a
user pastes them. No operator runs besides the chart's: the process kubelet runs the chart's
operator pods (image sloserve/operator, its ENTRYPOINT from operator/Dockerfile) with a token
of the chart's ServiceAccount, and the engine and router pods they create. Checked along the
way: no Available flicker at start (kwok's probe-gated readiness), the missing ServiceMonitor
CRD is an INFO line, and a pod of an image nothing here can run is not left Running.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from chartkit import REPO

from sloserve_dev.devcluster.eventually import eventually
from sloserve_dev.devcluster.kubeapi import JsonObj, KubeApi, KubeApiError
from sloserve_dev.devcluster.pki import Pki
from sloserve_dev.devcluster.pytest_plugin import require_testenv
from sloserve_dev.docblocks import Block, section_blocks

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.timeout(420)]

PAGE = "docs/operations.md"
LLMSERVICES = "/apis/sloserve.io/v1alpha1"


def install_block() -> Block:
    (block,) = [
        b for b in section_blocks(PAGE, (REPO / PAGE).read_text(), "Install") if b.lang == "bash"
    ]
    return block


@dataclass
class ConditionLog:
    """Every status a condition of the objects at ``path`` takes, in order, from a watch.

    A watch, not polling: the flicker this guards against lasted well under a second.
    """

    server: str
    pki: Pki
    path: str
    condition: str
    params: dict[str, str] = field(default_factory=dict)
    history: dict[str, list[str]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _record(self, obj: JsonObj) -> None:
        name = obj["metadata"]["name"]
        for cond in obj.get("status", {}).get("conditions") or []:
            if cond.get("type") == self.condition:
                seen = self.history.setdefault(name, [])
                if not seen or seen[-1] != cond["status"]:
                    seen.append(cond["status"])

    def _list_and_watch(self, api: KubeApi) -> None:
        listing = api.get(self.path, self.params)
        for obj in listing.get("items", []):
            self._record(obj)
        version = listing["metadata"]["resourceVersion"]
        while not self._stop.is_set():
            params = {**self.params, "resourceVersion": version}
            for event in api.watch(self.path, params, timeout_s=2):
                if event["type"] == "ERROR":
                    return  # e.g. 410 Gone: list again
                if event["type"] in ("ADDED", "MODIFIED"):
                    self._record(event["object"])
                version = event["object"]["metadata"]["resourceVersion"]

    def _run(self) -> None:
        api = KubeApi(self.server, self.pki)
        try:
            while not self._stop.is_set():
                try:
                    self._list_and_watch(api)
                except KubeApiError as exc:
                    # 404 until `helm install` brings the CRD; 429/503 while it is set up
                    if exc.status not in (404, 429, 503):
                        raise
                    self._stop.wait(0.2)
        finally:
            api.close()

    def __enter__(self) -> ConditionLog:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def flickers(self) -> dict[str, list[str]]:
        """Objects whose condition went True and then back to False."""
        return {
            name: seq
            for name, seq in self.history.items()
            if "True" in seq and "False" in seq[seq.index("True") :]
        }


@dataclass
class Up:
    """A running `sloserve testenv up` and the lines it printed for the user to paste."""

    workdir: Path
    exports: list[str]
    api: KubeApi
    server: str
    pki: Pki

    def bash(self, command: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
        script = "\n".join([*self.exports, command])
        return subprocess.run(
            ["bash", "-c", script],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def popen(self, command: str) -> subprocess.Popen[str]:
        script = "\n".join([*self.exports, f"exec {command}"])
        return subprocess.Popen(
            ["bash", "-c", script],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def _lines(stream: Any) -> queue.Queue[str]:
    """The stream's lines, read by a thread, so the test can wait for them with a deadline."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    testenv = require_testenv()
    tmp = tmp_path_factory.mktemp("testenv-up")
    workdir = tmp / "cluster"
    env = {
        **os.environ,
        "SLOSERVE_TESTENV": str(testenv.prefix),
        "XDG_CACHE_HOME": str(tmp / "cache"),  # its own run-state file: others may run `up`
    }
    env.pop("KUBECONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sloserve_operator.cli", "testenv", "up", "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = _lines(proc.stdout)
        printed: list[str] = []
        deadline = time.monotonic() + 120
        while not any("export PATH=" in line for line in printed):
            assert proc.poll() is None and time.monotonic() < deadline, "\n".join(printed)
            try:
                printed.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        exports = [line.strip() for line in printed if line.strip().startswith("export ")]
        assert [e.split("=")[0] for e in exports] == ["export KUBECONFIG", "export PATH"]
        config = yaml.safe_load((workdir / "kubeconfig").read_text())
        server = config["clusters"][0]["cluster"]["server"]
        pki = Pki.in_dir(workdir / "pki")
        api = KubeApi(server, pki)
        try:
            yield Up(workdir, exports, api, server, pki)
        finally:
            api.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _watch_until_ready(up: Up, command: str, name: str, timeout_s: float) -> list[str]:
    """Run the page's `kubectl get ... -w` until the service's READY column says True and
    stays so for a few more seconds; returns the READY column as printed, row by row."""
    watch = up.popen(command)
    lines = _lines(watch.stdout)
    ready: list[str] = []
    settled_at = None
    deadline = time.monotonic() + timeout_s
    try:
        while settled_at is None or time.monotonic() < settled_at:
            assert time.monotonic() < deadline, f"{command!r} never showed {name} READY True"
            try:
                cells = lines.get(timeout=1).split()
            except queue.Empty:
                continue
            if cells[:1] != [name]:
                continue
            # READY is the second column; while it is empty the second cell is another
            # column's (a count, ACTIVITY or POLICY), never True or False.
            ready.append(cells[1] if len(cells) > 1 and cells[1] in ("True", "False") else "")
            if ready[-1] == "True" and settled_at is None:
                settled_at = time.monotonic() + 8
    finally:
        os.killpg(watch.pid, signal.SIGTERM)
        watch.wait(timeout=10)
    return ready


def test_the_documented_helm_install_runs_the_operator_and_serves_the_example(up: Up) -> None:
    block = install_block()
    commands = [c.line for c in block.commands]
    assert commands[0].startswith("helm install "), commands
    watch = [c for c in commands if shlex.split(c)[-1] == "-w"]
    assert len(watch) == 1 and watch[0] == commands[-1], "the page ends with the watch"
    applied = [shlex.split(c)[-1] for c in commands if c.startswith("kubectl apply -f ")]
    (example,) = applied
    name = yaml.safe_load((REPO / example).read_text())["metadata"]["name"]

    with (
        ConditionLog(up.server, up.pki, f"{LLMSERVICES}/llmservices", "Available") as services,
        ConditionLog(
            up.server,
            up.pki,
            "/api/v1/pods",
            "Ready",
            {"labelSelector": "app.kubernetes.io/name in (sloserve-engine,sloserve-router)"},
        ) as pods,
    ):
        for command in commands[:-1]:
            out = up.bash(command)
            assert out.returncode == 0, f"{command!r} failed:\n{out.stdout}{out.stderr}"
        ready_column = _watch_until_ready(up, commands[-1], name, timeout_s=150)
    assert ready_column[-1] == "True"
    assert "False" not in ready_column[ready_column.index("True") :], ready_column
    assert services.history.get(name, [])[-1:] == ["True"], services.history
    assert not services.flickers(), f"Available flickered: {services.history}"
    assert pods.history and not pods.flickers(), f"pod Ready flickered: {pods.history}"

    # -- the chart's operator pods are what runs: processes with the pod's args and SA token
    operator_pods = up.api.get(
        "/api/v1/namespaces/sloserve-system/pods",
        {"labelSelector": "app.kubernetes.io/component=operator"},
    )["items"]
    assert len(operator_pods) == 2
    logs = {}
    for pod in operator_pods:
        (pod_dir,) = (up.workdir / "pods").glob(f"sloserve-system_{pod['metadata']['name']}_*")
        kubeconfig = yaml.safe_load((pod_dir / "kubeconfig").read_text())
        assert kubeconfig["users"][0]["name"] == "system:serviceaccount:sloserve-system:sloserve"
        assert "token" in kubeconfig["users"][0]["user"]
        logs[pod["metadata"]["name"]] = (pod_dir / "container.log").read_text()
        statuses = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert statuses["Ready"] == "True" and pod["status"]["containerStatuses"][0]["ready"]
        # `--host <pod IP>`: each replica's endpoints at its own pod IP, on the chart's ports
        metrics = httpx.get(f"http://{pod['status']['podIP']}:8080/metrics", timeout=5).text
        assert "sloserve_operator_" in metrics
    peering = up.api.get("/apis/kopf.dev/v1/clusterkopfpeerings/sloserve")
    assert set(peering.get("status") or {}) & set(logs), "no chart pod holds the peering"
    for pod_name, log in logs.items():
        warnings = [ln for ln in log.splitlines() if " WARNING " in ln and "servicemonitor" in ln]
        assert not warnings, f"{pod_name}: {warnings}"
        assert "ServiceMonitor CRD is not installed" in log, log[-2000:]

    # -- status and events of the example, written by that operator
    svc = up.api.get(f"{LLMSERVICES}/namespaces/default/llmservices/{name}")
    assert svc["status"]["readyReplicas"] >= 1
    events = up.api.get(
        "/api/v1/namespaces/default/events",
        {"fieldSelector": f"involvedObject.kind=LLMService,involvedObject.name={name}"},
    )["items"]
    reasons = [e["reason"] for e in events]
    assert "Available" in reasons and "Unavailable" not in reasons, reasons
    assert all(e["type"] == "Normal" for e in events), [(e["reason"], e["type"]) for e in events]
    assert {e["source"].get("component") or e.get("reportingComponent") for e in events} <= {
        "sloserve-operator",
        "sloserve-autoscaler",
    }
    engines = up.api.get(
        "/api/v1/namespaces/default/pods",
        {"labelSelector": "app.kubernetes.io/name=sloserve-engine"},
    )["items"]
    assert engines and all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
        for p in engines
    )

    # -- the example asks for vLLM (spec.engine.simulated false); the process kubelet runs every
    # engine --simulated. The status says what the engines report, and an Event says why.
    assert yaml.safe_load((REPO / example).read_text())["spec"]["engine"].get("simulated") is None
    path = f"{LLMSERVICES}/namespaces/default/llmservices/{name}"
    eventually(
        lambda: up.api.get(path).get("status", {}).get("engineMode") == "simulated",
        "status.engineMode simulated",
        30,
    )
    table = up.bash(f"kubectl get llms {name}").stdout
    header, row = table.splitlines()[:2]
    assert row[header.index("ENGINES") :].split()[0] == "simulated", table  # SLO may be empty
    described = up.bash(f"kubectl describe llms {name}").stdout
    assert re.search(r"Engine Mode:\s+simulated", described), described

    def mode_event() -> JsonObj | None:
        listed = up.api.get(
            "/api/v1/namespaces/default/events",
            {"fieldSelector": f"involvedObject.name={name},reason=EngineModeDiffers"},
        )["items"]
        return listed[0] if listed else None

    event = eventually(mode_event, "an EngineModeDiffers Event", 30)
    assert event["type"] == "Normal"
    assert event["message"].startswith(
        "engines run simulated although spec.engine.simulated is false"
    ), event["message"]


def test_a_pod_nothing_here_can_run_is_not_left_running(up: Up) -> None:
    out = up.bash("kubectl create deployment web --image=nginx:1.27")
    assert out.returncode == 0, out.stderr

    def not_run() -> JsonObj | None:
        items = up.api.get("/api/v1/namespaces/default/pods", {"labelSelector": "app=web"})["items"]
        waiting = [
            p
            for p in items
            if (p["status"].get("containerStatuses") or [{}])[0]
            .get("state", {})
            .get("waiting", {})
            .get("reason")
            == "NotRunLocally"
        ]
        return waiting[0] if waiting else None

    pod = eventually(not_run, "the nginx pod reported NotRunLocally", 60)
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "False"
    table = up.bash("kubectl get pods -l app=web --no-headers").stdout
    assert re.search(r"\s0/1\s+NotRunLocally\s", table), table
    events = up.api.get(
        "/api/v1/namespaces/default/events",
        {"fieldSelector": f"involvedObject.name={pod['metadata']['name']}"},
    )["items"]
    (event,) = [e for e in events if e["reason"] == "NotRunLocally"]
    assert event["type"] == "Warning" and "nginx:1.27" in event["message"]
    rollout = up.bash("kubectl rollout status deployment/web --timeout=3s")
    assert rollout.returncode != 0, "a Deployment nothing runs must not roll out"
