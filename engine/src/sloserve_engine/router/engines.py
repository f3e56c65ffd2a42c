"""Which engines exist and what state they last reported: the router's only I/O with engines
besides relaying requests.

Endpoints come from a static list (``--engines host:port,...``) or from the DNS
name of the engines' headless Service (``--engines-dns name:port``), resolved
again every ``resolve_interval_s`` so scaled-out pods join and deleted ones
leave. Each endpoint has its own polling task (a slow engine never delays the
others) that reads ``GET /sloserve/state`` every ``poll_interval_s``.

While requests wait for an engine (none is live), the host asks for a resolution
now (:meth:`EnginePool.resolve_soon`), at most every ``WAKE_RESOLVE_INTERVAL_S``:
engines that left are forgotten and a new one is polled within a fraction of a
second of its address appearing, instead of at the next periodic resolution.

An engine takes part in placement only while its last poll succeeded and its
state is younger than ``stale_after_s``: a killed engine refuses the next
poll (out within one poll interval), a hung one times out and ages out, and
a relay that cannot connect marks it down at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from ..server.state import STATE_PATH
from .snapshot import EngineSnapshot, snapshot_from_json

log = logging.getLogger(__name__)

WAKE_RESOLVE_INTERVAL_S = 0.25
"""Shortest gap between two resolutions asked for by waiting requests: a held request is
released at most this long after its engine's address appears (4 lookups a second per
router, and only while requests wait with no engine live)."""

Discover = Callable[[], Awaitable[list[str]]]
"""Returns the base URLs (``http://host:port``) of the engines that exist now."""


def parse_hostport(text: str, flag: str) -> tuple[str, int]:
    """``host:port`` (IPv6 as ``[::1]:8000``); ``ValueError`` names the flag."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{flag}: expected host:port, got {text!r}")
    return host, int(port)


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def static_discovery(spec: str) -> Discover:
    """``--engines a:8000,b:8000``: a fixed list, validated at start-up."""
    urls = [base_url(*parse_hostport(item, "--engines")) for item in spec.split(",") if item]
    if not urls:
        raise ValueError("--engines: expected at least one host:port")

    async def discover() -> list[str]:
        return list(urls)

    return discover


def file_discovery(path: Path) -> Discover:
    """``--engines-file F``: one ``host:port`` per line, read again at every resolution, for
    whatever keeps the list outside Kubernetes (the autoscaler bench's engine fleet). An
    absent file is no engine; a malformed line is an error (the pool keeps what it knows)."""

    async def discover() -> list[str]:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return []
        items = [line.strip() for line in text.splitlines() if line.strip()]
        try:
            return sorted({base_url(*parse_hostport(i, "--engines-file")) for i in items})
        except ValueError as exc:
            raise OSError(str(exc)) from None

    return discover


NO_ADDRESS_ERRORS = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)
"""Resolver answers that mean "this name has no address" (a headless Service without ready
pods), as opposed to a resolver that could not answer."""


def dns_discovery(spec: str) -> Discover:
    """``--engines-dns engines.ns.svc:8000``: every A/AAAA record of a headless Service."""
    host, port = parse_hostport(spec, "--engines-dns")

    async def discover() -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            if exc.errno in NO_ADDRESS_ERRORS:
                return []  # the Service has no ready engine: scaled to zero, or all starting
            raise  # a transient failure: the pool keeps the engines it knows
        return sorted({base_url(str(info[4][0]), port) for info in infos})

    return discover


@dataclass(slots=True)
class Polled:
    """The last thing one engine told this router."""

    url: str
    snapshot: EngineSnapshot | None = None
    received_at: float = float("-inf")
    """Router clock when ``snapshot`` arrived."""
    up: bool = False
    """The last poll (or relay) reached the engine."""
    failures: int = 0


@dataclass(frozen=True, slots=True)
class LiveEngine:
    """An engine that may take requests now, with its state and how old that state is."""

    url: str
    snapshot: EngineSnapshot
    received_at: float
    """Router clock when the snapshot arrived."""
    age_s: float


class EnginePool:
    """Polls every discovered engine; :meth:`live` is what placement may use."""

    def __init__(
        self,
        discover: Discover,
        *,
        poll_interval_s: float = 0.05,
        stale_after_s: float = 1.0,
        resolve_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._discover = discover
        self.poll_interval_s = poll_interval_s
        self.stale_after_s = stale_after_s
        self.resolve_interval_s = resolve_interval_s
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self.engines: dict[str, Polled] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.updated = asyncio.Event()
        """Set after every successful poll (a queue waiting for capacity re-tries then)."""
        self._resolve_now = asyncio.Event()

    def resolve_soon(self) -> None:
        """Resolve again now (or ``WAKE_RESOLVE_INTERVAL_S`` after the last resolution)
        rather than at the next period: requests are waiting and no engine is live."""
        self._resolve_now.set()

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Discover and poll (through ``session``) until cancelled."""
        self._session = session
        try:
            while True:
                resolved_at = self._clock()
                self._resolve_now.clear()  # asked again during this resolution: go again
                try:
                    self._reconcile(await self._discover())
                except OSError as exc:  # DNS failure: keep the engines we know
                    log.warning("engine discovery failed: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._resolve_now.wait(), self.resolve_interval_s)
                gap = WAKE_RESOLVE_INTERVAL_S - (self._clock() - resolved_at)
                if gap > 0:
                    await asyncio.sleep(gap)
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _reconcile(self, urls: Sequence[str]) -> None:
        wanted = set(urls)
        for url in list(self._tasks):
            if url not in wanted:
                log.info("engine %s left", url)
                self._tasks.pop(url).cancel()
                self.engines.pop(url, None)
        for url in wanted - self._tasks.keys():
            log.info("engine %s joined", url)
            self.engines[url] = Polled(url)
            self._tasks[url] = asyncio.create_task(self._poll_forever(url), name=f"poll {url}")

    async def _poll_forever(self, url: str) -> None:
        assert self._session is not None, "polling starts from run()"
        timeout = aiohttp.ClientTimeout(total=self.stale_after_s)
        while True:
            polled = self.engines.get(url)
            if polled is None:
                return
            try:
                async with self._session.get(url + STATE_PATH, timeout=timeout) as response:
                    if response.status != 200:
                        raise ValueError(f"status {response.status}")
                    snapshot = snapshot_from_json(json.loads(await response.read()))
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                if polled.up or polled.failures == 0:
                    log.warning("engine %s state poll failed: %s", url, type(exc).__name__)
                polled.up = False
                polled.failures += 1
            else:
                polled.snapshot = snapshot
                polled.received_at = self._clock()
                polled.up = True
                polled.failures = 0
                self.updated.set()
                self.updated.clear()
            await asyncio.sleep(self.poll_interval_s)

    def mark_down(self, url: str) -> None:
        """A relay could not connect: out of placement until a poll succeeds again."""
        polled = self.engines.get(url)
        if polled is not None:
            polled.up = False

    def live(self) -> list[LiveEngine]:
        now = self._clock()
        out = []
        for p in self.engines.values():
            age = now - p.received_at
            if p.up and p.snapshot is not None and age <= self.stale_after_s:
                out.append(LiveEngine(p.url, p.snapshot, p.received_at, age))
        return out

    def max_state_age_s(self) -> float:
        """Age of the oldest state among engines that are up (0 with none)."""
        now = self._clock()
        ages = [now - p.received_at for p in self.engines.values() if p.up]
        return max(ages, default=0.0)

    async def wait_update(self, timeout_s: float) -> None:
        """Until the next successful poll of any engine, or ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.updated.wait(), timeout_s)
