"""A missing ServiceMonitor CRD is one INFO line, not kopf's start-up WARNING.

kopf's own resource observation builds and logs the message (its real selector objects), so a
change of kopf's wording would show up here as the WARNING coming back.
"""

from __future__ import annotations

import logging

import pytest
from kopf._cogs.structs.references import Selector
from kopf._core.reactor import observation

from sloserve_operator.handlers import CHILD_RESOURCES
from sloserve_operator.optional_apis import (
    KOPF_OBSERVATION_LOGGER,
    OPTIONAL_RESOURCES,
    quiet_optional_apis,
    unresolved_resources,
)


def _observe(
    selectors: list[Selector], caplog: pytest.LogCaptureFixture
) -> list[logging.LogRecord]:
    quiet_optional_apis()
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=KOPF_OBSERVATION_LOGGER):
        observation._disable_mismatched_selectors(resources=set(), selectors=frozenset(selectors))
    return [r for r in caplog.records if r.name == KOPF_OBSERVATION_LOGGER]


def test_missing_servicemonitor_crd_is_info_and_says_what_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    (record,) = _observe([Selector("monitoring.coreos.com", "v1", "servicemonitors")], caplog)
    assert record.levelno == logging.INFO
    assert "ServiceMonitor CRD is not installed" in record.getMessage()
    assert "optional" in record.getMessage()


def test_a_missing_required_crd_still_warns(caplog: pytest.LogCaptureFixture) -> None:
    selectors = [
        Selector("monitoring.coreos.com", "v1", "servicemonitors"),
        Selector("sloserve.io", "v1alpha1", "llmservices"),
    ]
    (record,) = _observe(selectors, caplog)
    assert record.levelno == logging.WARNING
    assert "llmservices" in record.getMessage()


def test_every_optional_api_is_one_the_operator_watches() -> None:
    watched = {(group, plural) for group, _, plural in CHILD_RESOURCES}
    assert set(OPTIONAL_RESOURCES) <= watched
    assert unresolved_resources("something else") is None
