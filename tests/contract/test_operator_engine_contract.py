"""Contract 3 from both sides: what the operator renders, the engine's CLI and loader accept."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sloserve_engine.server import cli as engine_cli
from sloserve_operator.render import configmap, deployment
from sloserve_operator.render.target import Target

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "docs/examples").glob("*.yaml"))


def target(path: Path) -> Target:
    body = yaml.safe_load(path.read_text())
    body["metadata"].update(namespace="ns", uid="u", generation=1)
    return Target.from_body(body)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_engine_cli_accepts_rendered_args(path: Path) -> None:
    t = target(path)
    ours, extra = engine_cli.split_extra(deployment.engine_args(t))
    args = engine_cli.build_parser().parse_args(ours)
    assert args.port == 8000 and args.host == "0.0.0.0"
    assert str(args.knobs_file) == "/etc/sloserve/knobs/knobs.json"
    assert str(args.admin_token_file) == "/etc/sloserve/admin/token"
    assert args.simulated is t.spec.engine.simulated
    sim = engine_cli.sim_config_from(args.kv_tokens, extra)
    if t.spec.engine.kv_tokens:
        assert sim.kv_tokens == t.spec.engine.kv_tokens


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_engine_loads_the_rendered_configmap_at_the_same_revision(
    path: Path, tmp_path: Path
) -> None:
    cm = configmap.render(target(path))
    knobs_file = tmp_path / "knobs.json"
    knobs_file.write_text(cm["data"]["knobs.json"])
    knobs = engine_cli.initial_knobs(knobs_file)
    assert str(knobs.revision()) == cm["metadata"]["annotations"]["sloserve.io/knobs-revision"]
