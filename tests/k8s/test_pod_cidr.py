"""Each control plane on the machine gets its own loopback pod range (no cluster needed)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sloserve_dev.devcluster import podcidr
from sloserve_dev.devcluster.podcidr import NoFreePodCidrError, lease_pod_cidr


def test_concurrent_leases_get_distinct_ranges_and_a_released_one_is_reused(
    tmp_path: Path,
) -> None:
    first, second = lease_pod_cidr(tmp_path), lease_pod_cidr(tmp_path)
    assert (first.cidr, second.cidr) == ("127.64.0.0/16", "127.65.0.0/16")
    first.release()
    third = lease_pod_cidr(tmp_path)
    assert third.cidr == "127.64.0.0/16"
    second.release()
    third.release()


def test_exhausted_ranges_give_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(podcidr, "LAST_OCTET", podcidr.FIRST_OCTET)
    held = lease_pod_cidr(tmp_path)
    with pytest.raises(NoFreePodCidrError, match="sloserve testenv down"):
        lease_pod_cidr(tmp_path)
    held.release()


def test_an_address_in_a_leased_range_can_be_bound_without_privileges(tmp_path: Path) -> None:
    lease = lease_pod_cidr(tmp_path)
    address = lease.cidr.replace("0.0/16", "3.7")
    with socket.socket() as server:
        server.bind((address, 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
    lease.release()
