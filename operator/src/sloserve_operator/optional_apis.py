"""Optional APIs: a missing CRD the operator can do without is news, not a warning.

The operator watches ServiceMonitors (Prometheus Operator) so that it can render one per
LLMService where that CRD exists; most clusters, the dev cluster included, do not have it.
Kopf then logs at start-up, and again at every CRD change, the WARNING "Unresolved resources
cannot be served (try creating their CRDs): Selector(... servicemonitors)". This filter
turns that record into one INFO line saying what is skipped and why, when every unresolved
resource is optional; a missing required CRD (the LLMService one) still warns. Kopf starts
the watch by itself once the CRD is installed, and the controller renders the ServiceMonitors
within ``MONITOR_CHECK_S``.
"""

from __future__ import annotations

import logging
import re

from .render import monitor

KOPF_OBSERVATION_LOGGER = "kopf._core.reactor.observation"
UNRESOLVED_PREFIX = "Unresolved resources cannot be served"
OPTIONAL_RESOURCES: dict[tuple[str, str], str] = {
    (monitor.GROUP, monitor.PLURAL): "the Prometheus Operator's ServiceMonitor CRD is not "
    "installed: no ServiceMonitor is rendered for LLMServices until it is (optional; see "
    "docs/operations.md)",
}
"""(API group, plural) -> what its absence means, for every API the operator can do without."""

_SELECTOR = re.compile(r"Selector\(([^)]*)\)")
_FIELD = re.compile(r"(\w+)='([^']*)'")


def unresolved_resources(message: str) -> list[tuple[str, str]] | None:
    """(group, plural) of each selector in kopf's message; None for any other message."""
    if not message.startswith(UNRESOLVED_PREFIX):
        return None
    found = []
    for selector in _SELECTOR.findall(message):
        fields = dict(_FIELD.findall(selector))
        found.append((fields.get("group", ""), fields.get("plural") or fields.get("any_name", "")))
    return found


class OptionalApiFilter(logging.Filter):
    """Rewrites kopf's unresolved-resources WARNING to INFO when only optional APIs are absent."""

    def filter(self, record: logging.LogRecord) -> bool:
        resources = unresolved_resources(record.getMessage())
        if not resources or any(r not in OPTIONAL_RESOURCES for r in resources):
            return True
        record.msg = "; ".join(OPTIONAL_RESOURCES[r] for r in resources)
        record.args = ()
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


def quiet_optional_apis() -> None:
    """Install the filter on kopf's observation logger (once per process)."""
    logger = logging.getLogger(KOPF_OBSERVATION_LOGGER)
    if not any(isinstance(f, OptionalApiFilter) for f in logger.filters):
        logger.addFilter(OptionalApiFilter())
