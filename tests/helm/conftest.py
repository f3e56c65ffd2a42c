"""The helm binary comes from the k8s test environment (hack/testenv.sh builds it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sloserve_dev.devcluster.pytest_plugin import require_testenv


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """Skip locally / fail under CI=true when the test environment is not built."""
    return require_testenv().binary("helm")
