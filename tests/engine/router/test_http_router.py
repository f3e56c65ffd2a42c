"""``sloserve-router`` as a real process in front of real ``sloserve-engine --simulated``
processes, over real HTTP, with the ``openai`` package as the client."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from sloserve_engine.bench.fleet import Child, Fleet, fleet, free_port, wait_ready
from sloserve_engine.router.snapshot import snapshot_from_json

pytestmark = pytest.mark.slow  # each fleet starts 3-4 Python processes


@pytest.fixture(scope="module")
def two_by_two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Two engines (5x real time) behind two routers."""
    with fleet(tmp_path_factory.mktemp("fleet")) as f:
        f.start_engine(time_scale=5.0)
        f.start_engine(time_scale=5.0)
        f.start_router()
        f.start_router("--max-model-len", "100000")  # lets an engine-side 400 through
        f.wait_ready()
        yield f


def _client(router: Child) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0)


def _metric(url: str, name: str, default: float | None = None, **labels: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    want = name + (
        "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""
    )
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    if default is not None:
        return default
    raise AssertionError(f"{want} not exported")


def _auth(f: Fleet) -> dict[str, str]:
    return {"Authorization": "Bearer " + f.token_file.read_text().strip()}


def test_engines_publish_state_the_router_polls_at_10hz_or_more(two_by_two: Fleet) -> None:
    for engine in two_by_two.engines:
        snap = snapshot_from_json(httpx.get(engine.url + "/sloserve/state").json())
        assert snap.kv_total_tokens == 97_472 and snap.kv_free_tokens <= snap.kv_total_tokens
    router = two_by_two.routers[0]
    ages = []
    for _ in range(5):
        ages.append(_metric(router.url, "sloserve_router_state_age_seconds"))
        time.sleep(0.05)
    assert max(ages) < 0.25, ages  # a 50 ms poll; loaded CPUs stretch it, 10 Hz is the floor
    assert _metric(router.url, "sloserve_router_engines", state="live") == 2


def test_openai_client_streams_and_completes_through_the_router(two_by_two: Fleet) -> None:
    router = two_by_two.routers[0]
    client = _client(router)
    done = client.completions.create(model="sim", prompt="hello there", max_tokens=7)
    assert done.choices[0].text == "".join(f" t{i}" for i in range(7))
    assert done.usage is not None and done.usage.completion_tokens == 7
    stream = client.completions.create(
        model="sim",
        prompt=[1, 2, 3, 4],
        max_tokens=5,
        stream=True,
        extra_body={"vllm_xargs": {"slo_class": "interactive", "ttft_ms": 5000}},
    )
    texts = [chunk.choices[0].text for chunk in stream]
    assert texts == [f" t{i}" for i in range(5)]
    # vllm_xargs passed through unchanged: an engine finished a request of class "interactive"
    # (a declared class: undeclared ones are counted as "other").
    interactive = [
        _metric(
            e.url, "sloserve_requests_finished_total", 0.0, slo_class="interactive", attained="true"
        )
        for e in two_by_two.engines
    ]
    assert sum(interactive) == 1
    assert _metric(router.url, "sloserve_router_requests_total", outcome="finished") >= 2
    assert _metric(router.url, "sloserve_router_decision_seconds_count") >= 2


def test_bad_input_gets_the_engines_4xx_from_the_router(two_by_two: Fleet) -> None:
    router, engine = two_by_two.routers[0], two_by_two.engines[0]
    bodies = [
        {"model": "sim", "prompt": "x", "vllm_xargs": {"ttft_ms": -5}},
        {"model": "sim", "prompt": "x", "max_tokens": 0},
        {"model": "other", "prompt": "x"},
        {"model": "sim"},
    ]
    before = _metric(router.url, "sloserve_router_requests_total", outcome="invalid")
    for body in bodies:
        via_router = httpx.post(router.url + "/v1/completions", json=body)
        direct = httpx.post(engine.url + "/v1/completions", json=body)
        assert 400 <= via_router.status_code < 500
        assert (via_router.status_code, via_router.json()) == (direct.status_code, direct.json())
        assert via_router.json()["error"]["param"]
    after = _metric(router.url, "sloserve_router_requests_total", outcome="invalid")
    assert after - before == len(bodies)


def test_engine_errors_come_back_unchanged(two_by_two: Fleet) -> None:
    # This router believes in a 100k context; the engines know 8192 and say so.
    router = two_by_two.routers[1]
    body = {"model": "sim", "prompt": [7] * 9000, "max_tokens": 10}
    r = httpx.post(router.url + "/v1/completions", json=body)
    direct = httpx.post(two_by_two.engines[0].url + "/v1/completions", json=body)
    assert r.status_code == 400
    assert r.json() == direct.json()
    assert "maximum context length is 8192" in r.json()["error"]["message"]


def test_a_request_no_engine_can_serve_in_time_gets_429_with_retry_after(two_by_two: Fleet) -> None:
    router = two_by_two.routers[0]
    before = _metric(router.url, "sloserve_router_slo_misses_total", reason="rejected")
    body = {"model": "sim", "prompt": [1] * 4000, "vllm_xargs": {"ttft_ms": 0.01}}
    r = httpx.post(router.url + "/v1/completions", json=body)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert "TTFT" in r.json()["error"]["message"]
    assert _metric(router.url, "sloserve_router_slo_misses_total", reason="rejected") == before + 1


def test_client_disconnect_aborts_the_engine_request_and_counts(two_by_two: Fleet) -> None:
    router = two_by_two.routers[0]
    body = {"model": "sim", "prompt": "long one", "max_tokens": 3000, "stream": True}
    with httpx.stream("POST", router.url + "/v1/completions", json=body, timeout=30) as r:
        chunks = r.iter_raw()
        next(chunks)
        next(chunks)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        running = [
            httpx.get(e.url + "/sloserve/state").json()["running"] for e in two_by_two.engines
        ]
        aborted = _metric(router.url, "sloserve_router_requests_total", outcome="aborted")
        if running == [0, 0] and aborted >= 1:
            break
        time.sleep(0.1)
    assert running == [0, 0], "the engine still runs the abandoned request"
    assert aborted >= 1
    assert _metric(router.url, "sloserve_router_slo_misses_total", reason="aborted") >= 1


def test_non_streamed_request_abandoned_by_its_client_is_aborted(two_by_two: Fleet) -> None:
    router = two_by_two.routers[0]
    before = _metric(router.url, "sloserve_router_requests_total", outcome="aborted")
    body = {"model": "sim", "prompt": "a long answer", "max_tokens": 3000}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes the connection
        httpx.post(router.url + "/v1/completions", json=body, timeout=httpx.Timeout(1.0))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        running = [
            httpx.get(e.url + "/sloserve/state").json()["running"] for e in two_by_two.engines
        ]
        aborted = _metric(router.url, "sloserve_router_requests_total", outcome="aborted")
        if running == [0, 0] and aborted == before + 1:
            break
        time.sleep(0.1)
    assert running == [0, 0], "the engine still generates for a client that left"
    assert aborted == before + 1


def test_chat_completions_through_the_router(two_by_two: Fleet) -> None:
    client = _client(two_by_two.routers[0])
    chat = client.chat.completions.create(
        model="sim",
        messages=[{"role": "user", "content": "hello, router"}],
        max_tokens=4,
        extra_body={"vllm_xargs": {"slo_class": "chatty", "ttft_ms": 5000}},
    )
    assert chat.choices[0].message.content and chat.usage is not None
    assert chat.usage.completion_tokens == 4
    stream = client.chat.completions.create(
        model="sim", messages=[{"role": "user", "content": "again"}], max_tokens=3, stream=True
    )
    pieces = [
        c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) == 3


def test_router_knobs_change_live_validated_and_authenticated(two_by_two: Fleet) -> None:
    router = two_by_two.routers[1]
    start = httpx.get(router.url + "/sloserve/knobs").json()
    assert start["knobs"]["placement"] == "slo-greedy"
    assert httpx.put(router.url + "/sloserve/knobs", json={"placement": "p2c"}).status_code == 401
    bad = httpx.put(
        router.url + "/sloserve/knobs", json={"queueLimit": -1}, headers=_auth(two_by_two)
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "queueLimit"
    assert httpx.get(router.url + "/sloserve/knobs").json() == start  # nothing changed
    for field, value in (
        ("ttftMarginLateShare", 0.6),
        ("ttftMarginLateShare", float("nan")),
        ("kvWaitReserved", "sometimes"),
        ("ttftMargin", 0),
    ):
        bad = httpx.put(
            router.url + "/sloserve/knobs",
            content=json.dumps({field: value}),
            headers={**_auth(two_by_two), "content-type": "application/json"},
        )
        assert bad.status_code in (400, 422), (field, value, bad.text)
        assert field in bad.text, (field, bad.text)
        assert httpx.get(router.url + "/sloserve/knobs").json() == start
    assert _metric(router.url, "sloserve_router_ttft_margin") == 1.0
    ok = httpx.put(
        router.url + "/sloserve/knobs",
        json={"placement": "p2c", "queueTimeoutS": 2, "ttftMargin": 0.4},
        headers=_auth(two_by_two),
    )
    assert ok.status_code == 200
    new = ok.json()
    assert new["knobs"]["placement"] == "p2c" and new["revision"] != start["revision"]
    assert _metric(router.url, "sloserve_router_knobs_revision") == new["revision"]
    assert _metric(router.url, "sloserve_router_ttft_margin") == 0.4
    again = httpx.put(
        router.url + "/sloserve/knobs",
        json={"placement": "p2c", "queueTimeoutS": 2.0, "ttftMargin": 0.4},
        headers=_auth(two_by_two),
    )
    assert again.json()["revision"] == new["revision"]  # content-addressed
    done = _client(router).completions.create(model="sim", prompt="after", max_tokens=2)
    assert done.usage is not None and done.usage.completion_tokens == 2


def test_no_reachable_engine_gives_503_with_retry_after(tmp_path: Path) -> None:
    """Held for an engine up to ``coldStartTimeoutS`` (engines come and go), then 503."""
    with fleet(tmp_path) as f:
        knobs = tmp_path / "router-knobs.json"
        knobs.write_text(json.dumps({"coldStartTimeoutS": 1.0}))
        nobody = f"127.0.0.1:{free_port()}"  # nobody listens there
        router = f.start_router("--knobs-file", str(knobs), engines=[nobody])
        f.wait_ready()
        r = httpx.post(router.url + "/v1/completions", json={"model": "sim", "prompt": "x"})
        assert r.status_code == 503
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["type"] == "ServiceUnavailableError"
        assert "cold-start timeout (1 s)" in r.json()["error"]["message"]
        assert _metric(router.url, "sloserve_router_requests_total", outcome="unavailable") == 1
        assert _metric(router.url, "sloserve_router_engines", state="down") == 1


def test_killed_engine_errors_the_stream_and_leaves_placement_within_2s(tmp_path: Path) -> None:
    with fleet(tmp_path) as f:
        doomed = f.start_engine()
        survivor = f.start_engine()
        router = f.start_router()
        f.wait_ready()
        client = _client(router)
        stream = None
        for _ in range(10):  # the router may pick either engine: stream until it is the doomed
            candidate = client.completions.create(
                model="sim", prompt="tell me", max_tokens=2000, stream=True
            )
            next(iter(candidate))
            running = httpx.get(doomed.url + "/sloserve/state").json()["running"]
            if running:
                stream = candidate
                break
            candidate.close()
        assert stream is not None, "no stream landed on the doomed engine"
        doomed.kill()
        killed_at = time.monotonic()
        with pytest.raises(openai.APIError):
            for _ in stream:
                pass
        assert time.monotonic() - killed_at < 10, "the client hung"
        while time.monotonic() - killed_at < 2.0:
            health = httpx.get(router.url + "/sloserve/health").json()
            if health["engines"]["live"] == 1:
                break
            time.sleep(0.05)
        assert health["engines"]["live"] == 1
        assert time.monotonic() - killed_at < 2.0
        for _ in range(4):
            ok = client.completions.create(model="sim", prompt="still here", max_tokens=2)
            assert ok.usage is not None and ok.usage.completion_tokens == 2
        assert _metric(router.url, "sloserve_router_requests_total", outcome="error") == 1
        assert survivor.alive()


def test_engine_reservations_need_the_token_collide_and_expire(two_by_two: Fleet) -> None:
    url = two_by_two.engines[0].url + "/sloserve/reservations"
    auth = _auth(two_by_two)
    lax = {"ttftMs": 600_000}
    big = {"requestId": "t-big", "promptTokens": 60_000, "outputTokens": 30_000,
           "predictedOutput": 1000, "slo": lax, "leaseS": 2.5}  # fmt: skip
    small = {**big, "requestId": "t-small", "promptTokens": 20_000, "outputTokens": 1}
    assert httpx.post(url, json=big).status_code == 401
    deadline = time.monotonic() + 10  # idle: nothing drains, so only free KV counts
    while httpx.get(two_by_two.engines[0].url + "/sloserve/state").json()["running"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    bad = httpx.post(url, json={**big, "promptTokens": 0}, headers=auth)
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "promptTokens"
    granted = httpx.post(url, json=big, headers=auth)
    assert granted.status_code == 201, granted.text
    assert granted.json()["granted"] is True
    assert httpx.post(url, json=big, headers=auth).json()["reason"] == "duplicate"
    collision = httpx.post(url, json=small, headers=auth)
    assert collision.status_code == 409 and collision.json()["reason"] == "kv"
    time.sleep(1.0)  # 2.5 engine-seconds at 5x real time: the lease ran out
    again = httpx.post(url, json={**small, "requestId": "t-small-2"}, headers=auth)
    assert again.status_code == 201, again.text
    released = httpx.delete(url + "/t-small-2", headers=auth)
    assert released.json() == {"released": True}
    assert httpx.delete(url + "/t-small-2", headers=auth).json() == {"released": False}
    assert httpx.delete(url + "/t-small-2?reason=nope", headers=auth).status_code == 422


def test_engines_found_through_dns_serve_requests(tmp_path: Path) -> None:
    with fleet(tmp_path) as f:
        engine = f.start_engine(time_scale=5.0)
        # "localhost" resolves through the system resolver like a headless Service name; an
        # address it also yields where nothing listens (::1) is simply never live.
        router = f.start_router(dns=f"localhost:{engine.port}")
        f.wait_ready()
        deadline = time.monotonic() + 5
        while _metric(router.url, "sloserve_router_engines", state="live") < 1:
            assert time.monotonic() < deadline, "the DNS-discovered engine never became live"
            time.sleep(0.05)
        done = _client(router).completions.create(model="sim", prompt="dns", max_tokens=3)
        assert done.usage is not None and done.usage.completion_tokens == 3


def test_shield_refusals_hold_requests_until_the_queue_timeout_then_429(tmp_path: Path) -> None:
    with fleet(tmp_path) as f:
        engine = f.start_engine(time_scale=2.0)
        router = f.start_router()
        f.wait_ready()
        auth = _auth(f)
        httpx.put(
            router.url + "/sloserve/knobs", json={"queueTimeoutS": 0.5}, headers=auth
        ).raise_for_status()
        # Another router's reservation holds nearly all of the engine's KV (this router's
        # state does not show it): every placement collides at the engine's shield.
        hog = {"requestId": "other-router-1", "promptTokens": 90_000, "outputTokens": 5_000,
               "predictedOutput": 5_000, "slo": {"ttftMs": 600_000}, "leaseS": 60}  # fmt: skip
        granted = httpx.post(engine.url + "/sloserve/reservations", json=hog, headers=auth)
        assert granted.status_code == 201, granted.text
        body = {"model": "sim", "prompt": [3] * 2000, "max_tokens": 500,
                "vllm_xargs": {"ttft_ms": 5000}}  # fmt: skip
        r = httpx.post(router.url + "/v1/completions", json=body, timeout=30)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "queue timeout" in r.json()["error"]["message"]
        assert _metric(router.url, "sloserve_router_shield_refusals_total") >= 1
        assert _metric(router.url, "sloserve_router_requests_total", outcome="timed_out") == 1
        assert _metric(router.url, "sloserve_router_slo_misses_total", reason="timed_out") == 1
        httpx.delete(engine.url + "/sloserve/reservations/other-router-1", headers=auth)
        ok = httpx.post(router.url + "/v1/completions", json=body, timeout=30)
        assert ok.status_code == 200, ok.text  # the engine's KV is free again


def test_scaled_to_zero_requests_are_held_and_counted_until_the_cold_start_timeout(
    tmp_path: Path,
) -> None:
    with fleet(tmp_path) as f:
        knobs = tmp_path / "router-knobs.json"
        knobs.write_text(json.dumps({"coldStartTimeoutS": 1.5}))
        # A headless Service without ready pods resolves to nothing.
        router = f.start_router("--knobs-file", str(knobs), dns="no-engines.invalid:8000")
        f.wait_ready()

        async def held_then_503() -> tuple[httpx.Response, float]:
            async with httpx.AsyncClient(base_url=router.url, timeout=30) as client:
                request = asyncio.create_task(
                    client.post("/v1/completions", json={"model": "sim", "prompt": "wake"})
                )
                await asyncio.sleep(0.7)
                depth = float(
                    next(
                        line.split()[-1]
                        for line in (await client.get("/metrics")).text.splitlines()
                        if line.startswith("sloserve_router_queue_depth ")
                    )
                )
                return await request, depth

        started = time.monotonic()
        response, depth = asyncio.run(held_then_503())
        assert depth == 1.0  # the autoscaler's wake signal
        assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
        assert "cold-start timeout" in response.json()["error"]["message"]
        assert time.monotonic() - started >= 1.5
        assert _metric(router.url, "sloserve_router_requests_total", outcome="unavailable") == 1


def test_at_zero_a_request_is_held_across_stale_engines_and_released_when_one_appears(
    tmp_path: Path,
) -> None:
    """The dev-cluster bug: after a scale to zero the router still knew the dead engines until
    its next periodic re-resolution and answered a request 503 at once. Now a request with no
    live engine is held, the router re-resolves while it waits, and the request is released
    as soon as a new engine's address appears (here the periodic resolution is 60 s, so
    only the wake-up resolution can find it)."""
    with fleet(tmp_path) as f:
        engines = tmp_path / "engines"
        old = f.start_engine()
        f.wait_ready()
        engines.write_text(old.hostport + "\n")
        router = f.start_router("--resolve-interval-s", "60", file=engines)
        f.wait_ready()
        client = _client(router)
        eventually = time.monotonic() + 30
        while _metric(router.url, "sloserve_router_engines", state="live") < 1:
            assert time.monotonic() < eventually, router.tail()
            time.sleep(0.1)
        assert client.completions.create(model="sim", prompt="warm", max_tokens=3).usage
        # Scale to zero: the engine goes and its address leaves the list (the kubelet's file,
        # a headless Service's DNS); the router's next periodic resolution is a minute away.
        old.stop()
        engines.write_text("")

        async def at_zero() -> tuple[httpx.Response, float, float]:
            async with httpx.AsyncClient(base_url=router.url, timeout=60) as http:
                body = {"model": "sim", "prompt": "wake", "max_tokens": 4}
                request = asyncio.create_task(http.post("/v1/completions", json=body))
                await asyncio.sleep(1.0)
                assert not request.done(), "answered at zero instead of held"
                depth = _metric(router.url, "sloserve_router_queue_depth")
                new = f.start_engine()
                await asyncio.to_thread(wait_ready, new)
                engines.write_text(new.hostport + "\n")  # the new replica is Ready
                appeared = time.monotonic()
                response = await request
                return response, depth, time.monotonic() - appeared

        response, depth, released_after_s = asyncio.run(at_zero())
        assert depth == 1.0
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["completion_tokens"] == 4
        assert released_after_s < 10.0, released_after_s  # not the 60 s periodic resolution
        assert _metric(router.url, "sloserve_router_requests_total", outcome="finished") == 2
        assert (
            _metric(router.url, "sloserve_router_requests_total", 0.0, outcome="unavailable") == 0
        )


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_router_stopped_with_requests_held_at_zero_answers_them_with_an_error(
    tmp_path: Path, how: str
) -> None:
    """A router restart (pod deleted: SIGTERM; crashed: SIGKILL) while requests are held at
    zero: every client gets an error at once, not a hang. SIGTERM answers the held requests
    503 with Retry-After before uvicorn's 20 s shutdown grace (a client can retry at another
    router replica); SIGKILL leaves the clients a closed connection."""
    with fleet(tmp_path) as f:
        router = f.start_router(file=tmp_path / "no-engines")  # scaled to zero
        f.wait_ready()

        async def held_then_stopped() -> tuple[list[httpx.Response | Exception], float]:
            async with httpx.AsyncClient(base_url=router.url, timeout=60) as http:
                body = {"model": "sim", "prompt": "wake", "max_tokens": 4}
                requests = [
                    asyncio.create_task(http.post("/v1/completions", json=body)) for _ in range(5)
                ]
                while _metric(router.url, "sloserve_router_queue_depth") < 5:
                    await asyncio.sleep(0.1)
                stopped = time.monotonic()
                if how == "SIGTERM":
                    router.process.terminate()  # the router's own PID (its session leader)
                else:
                    router.kill()
                answers = await asyncio.gather(*requests, return_exceptions=True)
                return list(answers), time.monotonic() - stopped

        answers, after_s = asyncio.run(held_then_stopped())
        assert after_s < 10.0, after_s  # an error at once, not a hang until the grace ends
        if how == "SIGTERM":
            for answer in answers:
                assert isinstance(answer, httpx.Response), answer
                assert answer.status_code == 503 and int(answer.headers["retry-after"]) >= 1
                assert "shutting down" in answer.json()["error"]["message"]
            assert router.process.wait(30) == -signal.SIGTERM  # uvicorn re-raises it, exits
        else:
            assert all(isinstance(a, httpx.TransportError) for a in answers), answers


def test_two_routers_in_front_of_one_engine_do_not_refuse_each_other(tmp_path: Path) -> None:
    """Request ids are unique across routers: with both counting r0, r1, ... the engine's
    shield refused the second router's placements as duplicates (exactly once)."""
    with fleet(tmp_path) as f:
        f.start_engine()
        first, second = f.start_router(), f.start_router()
        f.wait_ready()
        for router in (first, second):
            client = _client(router)
            for _ in range(3):
                done = client.completions.create(model="sim", prompt="hi", max_tokens=2)
                assert done.usage is not None and done.usage.completion_tokens == 2
            assert _metric(router.url, "sloserve_router_shield_refusals_total") == 0
