"""What an engine pod looks like from outside: ports, paths, files and environment.

The operator renders pods and pushes knobs with these values; the engine
server listens and mounts by them, and hands the runtime knobs file to vLLM's
engine core through the environment names below.
"""

from __future__ import annotations

import socket

HTTP_PORT = 8000
"""The engine server's port (OpenAI API, admin API and ``/metrics``)."""
ADMIN_PREFIX = "/sloserve"
"""Path prefix of the admin API."""
KNOBS_API_PATH = f"{ADMIN_PREFIX}/knobs"
"""GET the knobs in force; PUT a new document (bearer token)."""
HEALTH_PATH = f"{ADMIN_PREFIX}/health"
"""Probe path: 200 while the engine serves, 503 otherwise."""

KNOBS_DIR = "/etc/sloserve/knobs"
"""Where the knobs ConfigMap is mounted."""
KNOBS_FILE = "knobs.json"
"""The ConfigMap key holding the knobs document (the file the pod starts from)."""
ADMIN_DIR = "/etc/sloserve/admin"
"""Where the admin Secret is mounted."""
ADMIN_TOKEN_KEY = "token"
"""The Secret key (and file name) holding the admin bearer token."""

KNOBS_PATH_ENV = "SLOSERVE_KNOBS_PATH"
"""Env var naming the runtime knobs file the scheduler in the engine core polls every step."""
KNOBS_STATUS_PATH_ENV = "SLOSERVE_KNOBS_STATUS_PATH"
"""Env var naming where the scheduler writes the applied ``KnobsState``."""
APPLIED_SUFFIX = ".applied"
"""Default status file: the knobs file's name with this suffix."""
POLICY_ENV = "SLOSERVE_POLICY"
"""Env var naming the policy used until a knobs document names one."""
PROFILE_ENV = "SLOSERVE_PROFILE"
"""Env var naming the cost-model profile policies plan with."""
STATE_PATH_ENV = "SLOSERVE_STATE_PATH"
"""Env var naming the file the real-mode scheduler writes its snapshot to."""


def engine_id() -> str:
    """This engine's name in snapshots: the pod name in Kubernetes (its hostname)."""
    return socket.gethostname()
