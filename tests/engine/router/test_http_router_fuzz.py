"""Fuzz the router's HTTP API (its own OpenAPI document) against real processes: whatever
the body, the router answers, and never with a 5xx of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from sloserve_engine.bench.fleet import Fleet, fleet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with fleet(tmp_path_factory.mktemp("fuzz")) as f:
        f.start_engine(time_scale=20.0)
        f.start_router()
        f.wait_ready()
        yield f


def test_no_request_gets_a_server_error(running: Fleet) -> None:
    """Every operation of the router's OpenAPI document, bodies generated from its schemas
    (valid and not), with the admin token so knob documents reach validation."""
    schema = schemathesis.openapi.from_url(running.routers[0].url + "/openapi.json")
    token = Path(running.token_file).read_text().strip()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/completions", "/v1/chat/completions"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def no_server_error(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"},
                checks=[not_a_server_error],
                timeout=30,
            )

        no_server_error()
