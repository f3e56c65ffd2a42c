"""Fixtures for operator e2e tests: CRDs installed once, an in-process operator per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from operator_e2e import ROOT, OperatorThread

from sloserve_dev.devcluster.cluster import DevCluster


@pytest.fixture(scope="session")
def crds(k8s: DevCluster) -> None:
    k8s.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    k8s.kubectl("wait", "--for=condition=Established", "crd/llmservices.sloserve.io")


@pytest.fixture
def start_operator(crds: None, namespace: str) -> Iterator[Callable[..., OperatorThread]]:
    running: list[OperatorThread] = []

    def start(**controller: Any) -> OperatorThread:
        op = OperatorThread(namespace, **controller).start()
        running.append(op)
        return op

    yield start
    for op in running:
        if op._thread.is_alive():
            op.stop()


@pytest.fixture
def operator(start_operator: Callable[..., OperatorThread]) -> OperatorThread:
    return start_operator()
