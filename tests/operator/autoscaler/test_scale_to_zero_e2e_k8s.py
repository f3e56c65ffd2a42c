"""Scale to zero and back on the real control plane (issue 16): operator and autoscaler
in-process, engine and router pods run by the process kubelet as real processes (the router
finds the engines through the file the kubelet keeps in place of the headless Service's DNS),
requests from the real ``openai`` client over real HTTP to the router pod (there is no
kube-proxy for the Service IP). The engines are simulated, with a startup delay that makes the
cold start visible.

What each test measured is printed (``-s``) and recorded as junit properties; the numbers of
a run are in docs/benchmarks.md ("Scale to zero on the dev cluster")."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from sloserve_dev.devcluster.cluster import DevCluster
from sloserve_dev.devcluster.eventually import eventually
from sloserve_dev.devcluster.kubelet import ProcessKubelet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_autoscaler_e2e_k8s import autoscaling_operator, service  # noqa: F401 (fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from operator_e2e import OperatorThread, apply, condition, engine_pods, llmservice

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.timeout(600)]

IDLE_S = 30
"""The smallest scaleToZeroAfterS the CRD allows."""
STARTUP_DELAY_S = 8
"""The rendered engines wait this long before they listen (engine.simulatedStartupDelayS)."""
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
MAX_TOKENS = 8
ANSWER = "".join(f" t{i}" for i in range(MAX_TOKENS))
"""What the simulated engine generates: a normal answer, whoever served it."""
BURST = 50

Record = Callable[[str, object], None]


def _pods(k8s: DevCluster, namespace: str, name: str, kind: str) -> list[dict[str, Any]]:
    return [
        p
        for p in engine_pods(k8s, namespace, name)
        if p["metadata"]["labels"].get("app.kubernetes.io/name") == kind
    ]


def engine_pods_of(k8s: DevCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return _pods(k8s, namespace, name, "sloserve-engine")


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def _router(
    k8s: DevCluster, kubelet: ProcessKubelet, namespace: str, name: str
) -> tuple[str, str] | None:
    """Name and URL of the service's ready router pod, once its process runs (so it holds its
    pod IP: nothing left over from another cluster answers there) and answers as a router."""
    routers = [
        p
        for p in _pods(k8s, namespace, name, "sloserve-router")
        if _ready(p) and not p["metadata"].get("deletionTimestamp")
    ]
    if not routers or not kubelet.running(namespace, routers[0]["metadata"]["name"]):
        return None
    url = f"http://{routers[0]['status']['podIP']}:8000"
    # kwok reports a new pod Ready before the process kubelet's probe says otherwise.
    health = httpx.get(url + "/sloserve/health", timeout=2)
    if health.status_code != 200 or health.json().get("mode") != "router":
        return None
    return routers[0]["metadata"]["name"], url


def _router_url(k8s: DevCluster, kubelet: ProcessKubelet, namespace: str, name: str) -> str | None:
    found = _router(k8s, kubelet, namespace, name)
    return found[1] if found else None


def _queue_depth(router: str) -> float:
    for line in httpx.get(router + "/metrics", timeout=5).text.splitlines():
        if line.startswith("sloserve_router_queue_depth "):
            return float(line.split()[-1])
    raise AssertionError("sloserve_router_queue_depth not exported")


def _at_zero(name: str, **router: object) -> dict[str, Any]:
    """A service created at zero replicas (nothing to wait for), one router."""
    body = service(name)
    body["spec"]["router"] = {"replicas": 1, **router}
    body["spec"]["engine"]["simulatedStartupDelayS"] = STARTUP_DELAY_S
    body["spec"]["autoscaling"].update(
        minReplicas=0, scaleToZeroAfterS=IDLE_S, scaleDownStabilizationSeconds=IDLE_S
    )
    body["spec"]["replicas"] = 0
    return body


def _complete(router: str) -> tuple[str, float]:
    """One completion through the router with the ``openai`` client: its text and latency."""
    client = openai.OpenAI(base_url=router + "/v1", api_key="unused", max_retries=0, timeout=120)
    started = time.monotonic()
    done = client.completions.create(model=MODEL, prompt=[1, 2, 3] * 50, max_tokens=MAX_TOKENS)
    return done.choices[0].text, time.monotonic() - started


async def _burst(router: str, n: int) -> list[tuple[int, str | None, str, float]]:
    """``n`` completions at once: (status, Retry-After, text or error message, latency)."""
    async with openai.AsyncOpenAI(
        base_url=router + "/v1", api_key="unused", max_retries=0, timeout=120
    ) as client:

        async def one() -> tuple[int, str | None, str, float]:
            started = time.monotonic()
            try:
                done = await client.completions.create(
                    model=MODEL, prompt=[1, 2, 3] * 50, max_tokens=MAX_TOKENS
                )
            except openai.APIStatusError as exc:
                retry = exc.response.headers.get("retry-after")
                return exc.status_code, retry, exc.message, time.monotonic() - started
            return 200, None, done.choices[0].text, time.monotonic() - started

        return list(await asyncio.gather(*(one() for _ in range(n))))


def _cold_start_s(k8s: DevCluster, namespace: str, name: str) -> float:
    value = eventually(
        lambda: llmservice(k8s, namespace, name)["status"].get("lastColdStartSeconds"),
        "status.lastColdStartSeconds",
        60,
    )
    return float(value)


def _spread(values: list[float]) -> str:
    median = statistics.median(values)
    return f"min {min(values):.1f} s, median {median:.1f} s, max {max(values):.1f} s"


def test_idle_service_goes_to_zero_keeps_its_router_and_a_request_wakes_it(
    k8s: DevCluster,
    namespace: str,
    kubelet: ProcessKubelet,
    autoscaling_operator: OperatorThread,  # noqa: F811
    record_property: Record,
) -> None:
    body = _at_zero("zero")
    body["spec"]["replicas"] = 1  # start warm, then idle
    apply(k8s, namespace, body)
    url = eventually(
        lambda: _router_url(k8s, kubelet, namespace, "zero"), "a ready router pod", 120
    )
    eventually(lambda: _complete(url)[0] == ANSWER or None, "a first answer via the router", 120)
    warm = [_complete(url)[1] for _ in range(3)]
    # Idle: the autoscaler scales to zero after the window; the router stays.
    eventually(
        lambda: llmservice(k8s, namespace, "zero")["status"].get("activity") == "Idle" or None,
        "status.activity Idle",
        IDLE_S + 90,
    )
    obj = llmservice(k8s, namespace, "zero")
    assert obj["spec"]["replicas"] == 0
    assert obj["status"]["lastScale"]["reason"] == "ScaleToZero"
    assert obj["status"]["lastRequestTime"]
    assert condition(obj, "Available")["status"] == "True"  # a router holds and wakes
    eventually(
        lambda: not _pods(k8s, namespace, "zero", "sloserve-engine") or None, "no engine", 90
    )
    assert _router_url(k8s, kubelet, namespace, "zero") == url  # the same router pod, still Ready

    # A request at zero: held by the router, which wakes the service; a normal answer.
    text, cold = _complete(url)
    assert text == ANSWER
    obj = llmservice(k8s, namespace, "zero")
    assert obj["status"]["lastScale"]["reason"] == "ScaleFromZero"
    cold_start = _cold_start_s(k8s, namespace, "zero")
    assert cold >= STARTUP_DELAY_S  # it waited for the engine to start, not served by a leftover
    line = (
        f"request at zero: {cold:.1f} s; warm requests {_spread(warm)}; "
        f"status.lastColdStartSeconds {cold_start:.1f} s"
    )
    print(line)
    record_property("request_at_zero", line)


def test_a_burst_at_zero_is_all_answered_or_all_503_when_the_cold_start_is_longer(
    k8s: DevCluster,
    namespace: str,
    kubelet: ProcessKubelet,
    autoscaling_operator: OperatorThread,  # noqa: F811
    record_property: Record,
) -> None:
    """No request is lost during wake-up: a burst at zero is answered in full, or, with a
    cold-start timeout shorter than the cold start, every request gets 503 with Retry-After."""
    apply(k8s, namespace, _at_zero("short", coldStartTimeoutS=3))
    apply(k8s, namespace, _at_zero("burst"))
    short = eventually(lambda: _router_url(k8s, kubelet, namespace, "short"), "short's router", 120)
    burst = eventually(lambda: _router_url(k8s, kubelet, namespace, "burst"), "burst's router", 120)
    assert not engine_pods_of(k8s, namespace, "short") and not engine_pods_of(
        k8s, namespace, "burst"
    )

    timed_out = asyncio.run(_burst(short, BURST))
    statuses = sorted({(s, r is not None and int(r) >= 1) for s, r, _, _ in timed_out})
    assert statuses == [(503, True)], timed_out  # only 503 with Retry-After: no other outcome
    assert all("cold-start timeout (3 s)" in text for _, _, text, _ in timed_out)
    # It woke all the same (the router's queue was read): wait for it, then free its CPU.
    eventually(
        lambda: llmservice(k8s, namespace, "short")["spec"].get("replicas", 0) >= 1 or None,
        "short woken by its router's queue",
        30,
    )
    k8s.kubectl("delete", "llmservice", "short", "-n", namespace, "--wait=false")
    eventually(lambda: not engine_pods_of(k8s, namespace, "short") or None, "short gone", 90)

    answered = asyncio.run(_burst(burst, BURST))
    assert [(s, t) for s, _, t, _ in answered] == [(200, ANSWER)] * BURST, answered
    cold_start = _cold_start_s(k8s, namespace, "burst")
    obj = llmservice(k8s, namespace, "burst")
    assert obj["status"]["lastScale"]["reason"] == "ScaleFromZero"
    latencies = [lat for *_, lat in answered]
    assert min(latencies) >= STARTUP_DELAY_S
    line = (
        f"burst of {BURST} at zero: all 200, latency {_spread(latencies)}, "
        f"status.lastColdStartSeconds {cold_start:.1f} s, replicas {obj['spec']['replicas']}; "
        f"coldStartTimeoutS 3: all {BURST} 503 with Retry-After, "
        f"latency {_spread([lat for *_, lat in timed_out])}"
    )
    print(line)
    record_property("burst_at_zero", line)


def test_router_restart_with_requests_held_at_zero(
    k8s: DevCluster,
    namespace: str,
    kubelet: ProcessKubelet,
    autoscaling_operator: OperatorThread,  # noqa: F811
    record_property: Record,
) -> None:
    """The router pod is deleted while requests wait at zero: its clients get 503 with
    Retry-After at once (not a hang), the Deployment's new router pod takes over, the service
    wakes and the next request is answered."""
    apply(k8s, namespace, _at_zero("restart"))
    old_pod, old = eventually(
        lambda: _router(k8s, kubelet, namespace, "restart"), "a ready router", 120
    )

    woken_before: list[int] = []

    async def held_then_deleted() -> tuple[list[tuple[int, str | None, str, float]], float]:
        requests = asyncio.create_task(_burst(old, 5))
        while await asyncio.to_thread(_queue_depth, old) < 5:
            await asyncio.sleep(0.1)
        obj = await asyncio.to_thread(llmservice, k8s, namespace, "restart")
        woken_before.append(obj["spec"].get("replicas", 0))
        deleted = time.monotonic()
        await asyncio.to_thread(
            k8s.kubectl, "delete", "pod", old_pod, "-n", namespace, "--wait=false"
        )
        answers = await requests
        return answers, time.monotonic() - deleted

    answers, after_s = asyncio.run(held_then_deleted())
    assert [(s, r) for s, r, _, _ in answers] == [(503, "1")] * 5, answers
    assert all("shutting down" in text for _, _, text, _ in answers)
    assert after_s < 15.0, after_s  # an answer, not the 30 s grace nor a hang
    _, new = eventually(  # kwok may give the new pod the old one's IP: compare names
        lambda: (r := _router(k8s, kubelet, namespace, "restart")) and r[0] != old_pod and r,
        "the replacement router pod Ready",
        120,
    )
    text, latency = _complete(new)
    assert text == ANSWER
    obj = llmservice(k8s, namespace, "restart")
    assert obj["spec"]["replicas"] >= 1
    assert obj["status"]["lastScale"]["reason"] == "ScaleFromZero"
    line = (
        f"router pod deleted with 5 requests held at zero: all 503 Retry-After: 1 "
        f"{after_s:.1f} s after the delete (spec.replicas {woken_before[0]} at the delete); "
        f"the next request via the new router: {latency:.1f} s, answered"
    )
    print(line)
    record_property("router_restart_at_zero", line)
