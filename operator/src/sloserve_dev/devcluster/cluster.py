"""A control plane plus simulated GPU nodes: what tests, ``sloserve testenv`` and the demo use."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sloserve_dev.devcluster.controlplane import ControlPlane, ControlPlaneConfig
from sloserve_dev.devcluster.nodes import GpuNodeSpec, default_gpu_nodes, register_gpu_nodes
from sloserve_dev.devcluster.testenv import Testenv


@dataclass
class DevCluster:
    control_plane: ControlPlane
    nodes: list[GpuNodeSpec]

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run this cluster's kubectl; on failure the error carries kubectl's stderr."""
        result = subprocess.run(
            [str(self.control_plane.testenv.binary("kubectl")), *args],
            input=input_text,
            capture_output=True,
            text=True,
            env=self.control_plane.env(),
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result


@contextmanager
def dev_cluster(
    testenv: Testenv,
    nodes: list[GpuNodeSpec] | None = None,
    config: ControlPlaneConfig | None = None,
) -> Iterator[DevCluster]:
    """Start the control plane, register the GPU nodes, and stop everything on exit."""
    specs = default_gpu_nodes() if nodes is None else nodes
    with ControlPlane(testenv, config or ControlPlaneConfig()) as control_plane:
        register_gpu_nodes(control_plane.api, specs)
        yield DevCluster(control_plane, specs)
