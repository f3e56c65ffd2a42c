"""pytest fixtures for tests against the real control plane (marker ``k8s``).

``k8s`` (session): control plane + two 8-GPU H100 nodes, started once per session.
``namespace``: a fresh namespace per test, deleted afterwards.
``kubelet``: a process kubelet running engine and router pods of the session cluster as local
processes.
Without the built binaries the tests skip with a reason naming ``make testenv``; under CI
(``CI=true``) they fail instead, so CI can never pass by skipping the real cluster.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from sloserve_dev.devcluster.cluster import DevCluster, dev_cluster
from sloserve_dev.devcluster.controlplane import ControlPlaneConfig
from sloserve_dev.devcluster.kubeapi import KubeApiError
from sloserve_dev.devcluster.kubelet import ENGINE_SELECTOR, ProcessKubelet
from sloserve_dev.devcluster.testenv import Testenv, TestenvMissingError, find_testenv

LOG_PATHS = pytest.StashKey[list[Path]]()
KUBELET_DIR = pytest.StashKey[Path]()


def require_testenv() -> Testenv:
    """The built binaries, or skip (locally) / fail (CI) with how to build them."""
    try:
        return find_testenv()
    except TestenvMissingError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true and the k8s test environment is missing: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def k8s(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevCluster]:
    testenv = require_testenv()
    workdir = tmp_path_factory.mktemp("k8s")
    # kwok's instant readiness: many tests here run no process kubelet (the scale test, the
    # chart install) and count on kwok's Ready pods; the `kubelet` fixture still owns Ready for
    # the pods it runs (it reports False at start, then the probe's verdict).
    config = ControlPlaneConfig(workdir=workdir, pod_readiness="instant")
    with dev_cluster(testenv, config=config) as cluster:
        request.config.stash[LOG_PATHS] = cluster.control_plane.log_paths()
        with pytest.MonkeyPatch.context() as mp:
            env = cluster.control_plane.env()
            mp.setenv("KUBECONFIG", env["KUBECONFIG"])
            mp.setenv("PATH", env["PATH"])
            yield cluster


@pytest.fixture
def namespace(k8s: DevCluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    api = k8s.control_plane.api
    api.create("/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    with contextlib.suppress(KubeApiError):  # already gone
        api.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def kubelet(
    request: pytest.FixtureRequest, k8s: DevCluster, tmp_path: Path
) -> Iterator[ProcessKubelet]:
    cp = k8s.control_plane
    request.node.stash[KUBELET_DIR] = tmp_path / "kubelet"
    workdir = tmp_path / "kubelet"
    log_path = workdir / "process-kubelet.log"
    # Engine and router pods only: the session cluster is shared, and a kubelet that ran every
    # pod could start another test's leftovers (a chart's operator pod, say).
    with ProcessKubelet(
        cp.server, cp.pki, workdir, selector=ENGINE_SELECTOR, log_path=log_path
    ) as kubelet:
        yield kubelet


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Name the control-plane log files under every failing test that used the cluster."""
    report = yield
    paths = item.config.stash.get(LOG_PATHS, [])
    if report.failed and paths and "k8s" in getattr(item, "fixturenames", ()):
        lines = [str(p) for p in paths]
        if KUBELET_DIR in item.stash:
            kubelet_dir = item.stash[KUBELET_DIR]
            lines.append(f"{kubelet_dir}/process-kubelet.log")
            lines.append(f"{kubelet_dir}/<namespace>_<pod>_<uid>/container.log")
        report.sections.append(("control-plane logs", "\n".join(lines)))
    return report
