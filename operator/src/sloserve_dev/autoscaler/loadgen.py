"""The bench's load generator, in its own OS process: the planned open-loop trace over real HTTP.

On the 2-core development VM a generator sharing the harness's event loop (with the recorder's
and the controllers' scrapes) fell behind the trace and then sent in bursts. This process has
its own event loop and HTTP client and does nothing else: it sends each request of the plan
(:func:`~.trace.arrivals`, the one declaration of the load) at its planned time on the shared
monotonic clock, to a target the harness named, and streams one line per send and one per
outcome back.

Protocol, JSON lines. The harness writes on stdin the :class:`LoadPlan` first, then any number
of ``{"targets": [url, ...]}`` and one ``{"start": T}`` (the trace's zero on
``time.monotonic``, which is asyncio's loop clock); closing stdin stops the generator. The
generator writes ``{"sent": i, "at": t}`` when planned request ``i`` leaves (``t`` in modelled
seconds) and ``{"done": Served}`` once its answer or failure is in, and exits once every planned
request has its outcome. Requests still in flight when it is stopped get no ``done`` line: the
harness ended them, not the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from .trace import Phase, Workload, arrivals

Placement = Literal["round-robin", "least-in-flight"]


@dataclass(frozen=True)
class LoadPlan:
    trace: tuple[Phase, ...]
    workload: Workload
    seed: int
    time_scale: float
    """Modelled seconds per wall second."""
    placement: Placement
    """``round-robin`` over routers, as a ClusterIP Service spreads connections over router pods;
    ``least-in-flight`` over engines, as a least-requests gateway would (counting the
    generator's own requests)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> LoadPlan:
        data = json.loads(text)
        return cls(
            tuple(Phase(**p) for p in data["trace"]),
            Workload.from_json(data["workload"]),
            int(data["seed"]),
            float(data["time_scale"]),
            data["placement"],
        )


@dataclass
class Served:
    """One request as the client saw it."""

    sent_at: float
    latency_s: float
    status: int
    """HTTP status; 0 when the connection failed."""
    max_tokens: int = 0
    """Output tokens asked for (the simulated engines produce all of them): the client-side
    end-to-end bound of the SLO depends on it."""
    index: int | None = None
    """Position in the plan (None: recorded before it was kept)."""


class Picker:
    """Where the next request goes, among the targets the harness last named."""

    def __init__(self, placement: Placement) -> None:
        self.placement = placement
        self.targets: list[str] = []
        self.in_flight: dict[str, int] = {}
        self._next = 0

    def pick(self) -> str | None:
        if not self.targets:
            return None
        if self.placement == "round-robin":
            self._next = (self._next + 1) % len(self.targets)
            return self.targets[self._next]
        return min(self.targets, key=lambda u: self.in_flight.get(u, 0))


Emit = Callable[[dict[str, Any]], None]


async def generate(plan: LoadPlan, commands: asyncio.StreamReader, emit: Emit) -> None:
    """Send ``plan`` once ``commands`` gives its start; return when every request has its
    outcome, or when ``commands`` ends (in-flight requests are then cancelled, unrecorded)."""
    picker = Picker(plan.placement)
    started: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def listen() -> None:
        while line := await commands.readline():
            message = json.loads(line)
            if "targets" in message:
                picker.targets = [str(u) for u in message["targets"]]
            elif "start" in message and not started.done():
                started.set_result(float(message["start"]))

    listener = asyncio.create_task(listen())
    sender = asyncio.create_task(_send_all(plan, picker, started, emit))
    done, _ = await asyncio.wait({listener, sender}, return_when=asyncio.FIRST_COMPLETED)
    for task in (listener, sender):
        task.cancel()
    await asyncio.gather(listener, sender, return_exceptions=True)
    for task in done:
        task.result()  # a failure of the generator itself is loud, not a short run


async def _send_all(
    plan: LoadPlan, picker: Picker, started: asyncio.Future[float], emit: Emit
) -> None:
    start = await started

    def clock() -> float:
        return (time.monotonic() - start) * plan.time_scale

    # Open loop: no connection cap (a pool limit would queue requests inside the client).
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=200)
    timeout = httpx.Timeout(600.0 / plan.time_scale + 30.0, connect=2.0)
    async with (
        httpx.AsyncClient(timeout=timeout, limits=limits) as client,
        asyncio.TaskGroup() as tasks,
    ):
        for i, (t, body) in enumerate(arrivals(plan.trace, plan.workload, plan.seed)):
            await asyncio.sleep(max(0.0, t / plan.time_scale - (time.monotonic() - start)))
            sent = clock()
            emit({"sent": i, "at": sent})
            tasks.create_task(_request(client, picker, i, sent, body, clock, emit))


async def _request(
    client: httpx.AsyncClient,
    picker: Picker,
    index: int,
    sent: float,
    body: dict[str, Any],
    clock: Callable[[], float],
    emit: Emit,
) -> None:
    url, status = picker.pick(), 0
    if url is not None:
        picker.in_flight[url] = picker.in_flight.get(url, 0) + 1
        try:
            status = (await client.post(f"{url}/v1/completions", json=body)).status_code
        except httpx.HTTPError:
            pass  # no answer: status 0
        finally:
            picker.in_flight[url] -= 1
    emit({"done": asdict(Served(sent, clock() - sent, status, body["max_tokens"], index))})


class LoadGenerator:
    """The harness's handle on the generator process: what it sent and what came back."""

    def __init__(self, log: Path) -> None:
        self._log = log
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._targets: list[str] | None = None
        self.sent_at: list[float] = []
        """Modelled send time of each request sent, in order."""
        self.requests: list[Served] = []
        """Each request's outcome, in the order the outcomes came in."""

    @property
    def outstanding(self) -> int:
        """Requests sent and not yet answered."""
        return len(self.sent_at) - len(self.requests)

    async def start(self, plan: LoadPlan) -> None:
        with self._log.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                __name__,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        self._write(plan.to_json())
        self._reader = asyncio.create_task(self._read())

    def target(self, urls: Sequence[str]) -> None:
        """Send the next requests to ``urls`` (written only when they changed)."""
        if list(urls) != self._targets:
            self._targets = list(urls)
            self._write({"targets": self._targets})

    def go(self, start: float) -> None:
        """The trace starts at ``start`` on ``time.monotonic`` (``loop.time()``)."""
        self._write({"start": start})

    async def finished(self) -> None:
        """Wait until the generator exits by itself: every planned request has its outcome."""
        assert self._process is not None and self._reader is not None
        await self._process.wait()
        await self._reader

    async def stop(self) -> None:
        """Stop sending; requests still in flight are cancelled and not recorded."""
        process = self._process
        if process is None:
            return
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def _write(self, message: dict[str, Any] | str) -> None:
        assert self._process is not None and self._process.stdin is not None
        line = message if isinstance(message, str) else json.dumps(message)
        self._process.stdin.write(line.encode() + b"\n")

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for line in self._process.stdout:
            message = json.loads(line)
            if "sent" in message:
                self.sent_at.append(float(message["at"]))
            elif "done" in message:
                self.requests.append(Served(**message["done"]))


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _main() -> None:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    await generate(LoadPlan.from_json(await commands.readline()), commands, _emit)


if __name__ == "__main__":
    asyncio.run(_main())
