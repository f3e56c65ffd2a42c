"""Give each control plane on this machine its own loopback pod range.

Pod IPs are loopback addresses and every engine listens on the same port, so two clusters
sharing one range (two test sessions, a test run beside the demo) would hand out the same
pod IP and one engine would answer requests meant for the other. A /16 per control plane,
held by an flock for the life of the process, rules that out; the kernel drops the lock if
the process dies.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

FIRST_OCTET, LAST_OCTET = 64, 254
LOCK_DIR = Path.home() / ".cache" / "sloserve-testenv" / "run" / "pod-cidrs"
"""Not under ``$XDG_CACHE_HOME``: loopback addresses are shared by every process of the user,
so the locks must be too, also for a ``testenv up`` whose run-state file a test moved away
with ``XDG_CACHE_HOME`` (it would otherwise lease the range a running cluster holds)."""


class NoFreePodCidrError(RuntimeError):
    """Every 127.X.0.0/16 range is held by another running control plane."""


@dataclass
class PodCidrLease:
    """A held range; ``release()`` (or process exit) frees it."""

    cidr: str
    _fd: int

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def cidr_for(octet: int) -> str:
    return f"127.{octet}.0.0/16"


def lease_pod_cidr(lock_dir: Path = LOCK_DIR) -> PodCidrLease:
    """The first 127.X.0.0/16 (X from 64) that no other live control plane holds."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    for octet in range(FIRST_OCTET, LAST_OCTET + 1):
        fd = os.open(lock_dir / f"127.{octet}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return PodCidrLease(cidr_for(octet), fd)
    raise NoFreePodCidrError(
        f"all pod ranges 127.{FIRST_OCTET}-{LAST_OCTET}.0.0/16 are held by running control "
        f"planes (locks in {lock_dir}); stop some with `sloserve testenv down`"
    )
