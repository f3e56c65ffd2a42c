"""Golden-file tests of the pure renderers (``UPDATE_GOLDEN=1`` rewrites the files)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.router.knobs import RouterKnobs
from sloserve_operator import render
from sloserve_operator.render import deployment, router, secret
from sloserve_operator.render.target import Target

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = ("llmservice", "llmservice-simulated")


def target_for(example: str, **spec_patch: Any) -> Target:
    body = yaml.safe_load((ROOT / "docs/examples" / f"{example}.yaml").read_text())
    body["metadata"].update(namespace="default", uid="0000-uid", generation=3)
    body["spec"].update(spec_patch)
    return Target.from_body(body)


@pytest.mark.parametrize("example", EXAMPLES)
def test_children_match_golden(example: str) -> None:
    objs = render.children(target_for(example), with_service_monitor=True)
    text = yaml.safe_dump_all(objs, sort_keys=True)
    path = GOLDEN / f"{example}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"missing {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs; inspect, then UPDATE_GOLDEN=1"


def test_every_child_is_owned_and_labelled() -> None:
    t = target_for("llmservice")
    for obj in [*render.children(t, with_service_monitor=True), secret.render(t, "tok")]:
        meta = obj["metadata"]
        assert meta["namespace"] == "default"
        (owner,) = meta["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "LLMService",
            "0000-uid",
            True,
        )
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "sloserve-operator"
        assert meta["labels"]["sloserve.io/service"] == "llama-8b"


def test_service_monitor_only_when_asked() -> None:
    kinds = [
        o["kind"] for o in render.children(target_for("llmservice"), with_service_monitor=False)
    ]
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Service",
        "Service",
        "PodDisruptionBudget",
        "Deployment",
        "PodDisruptionBudget",
    ]


def _by_name(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def test_service_selects_routers_and_engines_get_a_headless_service() -> None:
    t = target_for("llmservice")
    services = _by_name(render.children(t, with_service_monitor=False), "Service")
    assert services["llama-8b"]["spec"]["selector"] == {
        "app.kubernetes.io/name": "sloserve-router",
        "sloserve.io/service": "llama-8b",
    }
    headless = services["llama-8b-engines"]["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["selector"] == t.selector
    assert t.endpoint == "http://llama-8b.default.svc:8000"


def test_without_routers_the_service_selects_the_engines() -> None:
    t = target_for("llmservice", router={"replicas": 0})
    objs = render.children(t, with_service_monitor=False)
    assert _by_name(objs, "Service")["llama-8b"]["spec"]["selector"] == t.selector
    assert _by_name(objs, "Deployment")["llama-8b-router"]["spec"]["replicas"] == 0


@pytest.mark.parametrize("routers", [0, 2])
def test_service_monitor_scrapes_every_pod_once(routers: int) -> None:
    t = target_for("llmservice", router={"replicas": routers})
    objs = render.children(t, with_service_monitor=True)
    (mon,) = [o for o in objs if o["kind"] == "ServiceMonitor"]
    sel = mon["spec"]["selector"]
    (expr,) = sel["matchExpressions"]
    assert expr["operator"] == "Exists"

    def matched(svc: dict[str, Any]) -> bool:
        labels = svc["metadata"]["labels"]
        return expr["key"] in labels and sel["matchLabels"].items() <= labels.items()

    scraped = [
        tuple(sorted(o["spec"]["selector"].items()))
        for o in objs
        if o["kind"] == "Service" and matched(o)
    ]
    assert len(scraped) == len(set(scraped)) == (2 if routers else 1)
    assert tuple(sorted(t.selector.items())) in scraped


def test_router_deployment_runs_the_router_without_gpus() -> None:
    t = target_for("llmservice", router={"replicas": 3, "resources": {"cpu": "2"}})
    dep = _by_name(render.children(t, with_service_monitor=False), "Deployment")["llama-8b-router"]
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["selector"]["matchLabels"] == t.router_selector
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["sloserve-router"]
    assert c["image"] == t.spec.engine.image
    assert c["resources"]["requests"] == {"cpu": "2", "memory": "1Gi"}
    assert not any("gpu" in k for k in c["resources"]["limits"])
    assert "tolerations" not in pod
    args = c["args"]
    assert args[args.index("--engines-dns") + 1] == "llama-8b-engines.default.svc:8000"
    assert args[args.index("--admin-token-file") + 1] == "/etc/sloserve/admin/token"
    assert c["readinessProbe"]["httpGet"]["path"] == "/sloserve/health"


def _template(t: Target) -> dict[str, Any]:
    tmpl: dict[str, Any] = deployment.render(t)["spec"]["template"]
    return tmpl


KNOB_CHANGES = [
    pytest.param({"scheduler": {"policy": "vllm"}}, id="policy"),
    pytest.param({"scheduler": {"reservationRatio": 0.2, "preemptionMode": "swap"}}, id="ratio"),
    pytest.param({"scheduler": {"chunkMinTokens": 16, "chunkMaxTokens": 512}}, id="chunks"),
    pytest.param({"slo": {"ttftMs": 250, "tbtMs": 40, "sloClass": "gold"}}, id="slo"),
    pytest.param({"scheduler": {"predictorConfidence": 0.99}}, id="confidence"),
]


@pytest.mark.parametrize("patch", KNOB_CHANGES)
def test_knob_changes_never_touch_the_pod_template(patch: dict[str, Any]) -> None:
    before, after = target_for("llmservice"), target_for("llmservice", **patch)
    assert _template(before) == _template(after)
    old_cm, new_cm = (render.configmap.render(t) for t in (before, after))
    assert old_cm["data"] != new_cm["data"]
    rev = Knobs.model_validate_json(new_cm["data"]["knobs.json"]).revision()
    assert new_cm["metadata"]["annotations"]["sloserve.io/knobs-revision"] == str(rev)
    assert rev == after.spec.knobs().revision() != before.spec.knobs().revision()


def test_engine_args_follow_contract_3() -> None:
    args = deployment.engine_args(target_for("llmservice"))
    head = args[: args.index("--")]
    assert head[:4] == ["--host", "0.0.0.0", "--port", "8000"]
    assert head[head.index("--served-model-name") + 1] == "llama-3.1-8b"
    assert head[head.index("--knobs-file") + 1] == "/etc/sloserve/knobs/knobs.json"
    assert head[head.index("--admin-token-file") + 1] == "/etc/sloserve/admin/token"
    tail = args[args.index("--") + 1 :]
    assert tail[:2] == ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
    assert "--max-model-len" in tail


def test_simulated_startup_delay_reaches_the_engine() -> None:
    t = target_for("llmservice", engine={"simulated": True, "simulatedStartupDelayS": 12.5})
    args = deployment.engine_args(t)
    assert args[:3] == ["--simulated", "--startup-delay-s", "12.5"]
    assert "--startup-delay-s" not in deployment.engine_args(target_for("llmservice"))


def test_simulated_flag_and_extra_args() -> None:
    t = target_for("llmservice", engine={"simulated": True, "extraArgs": ["--enforce-eager"]})
    args = deployment.engine_args(t)
    assert args[0] == "--simulated"
    assert args[-1] == "--enforce-eager"


@pytest.mark.parametrize(
    ("spec_replicas", "bounds", "expected"),
    [
        pytest.param(None, (1, 4), 1, id="unset->min"),
        pytest.param(3, (1, 4), 3, id="within"),
        pytest.param(9, (1, 4), 4, id="clamped-high"),
        pytest.param(0, (2, 4), 2, id="clamped-low"),
    ],
)
def test_deployment_replicas_are_spec_replicas_within_bounds(
    spec_replicas: int | None, bounds: tuple[int, int], expected: int
) -> None:
    auto = {"minReplicas": bounds[0], "maxReplicas": bounds[1]}
    t = target_for("llmservice", replicas=spec_replicas, autoscaling=auto)
    assert deployment.render(t)["spec"]["replicas"] == expected


def test_gpu_request_and_probes() -> None:
    t = target_for("llmservice", engine={"tensorParallelSize": 2, "gpu": {"count": 2}})
    c = deployment.render(t)["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert c["readinessProbe"]["httpGet"]["path"] == "/sloserve/health"
    assert "--tensor-parallel-size" in c["args"]


def test_admin_secret_carries_the_token() -> None:
    obj = secret.render(target_for("llmservice"), "s3cret")
    assert obj["stringData"] == {"token": "s3cret"}
    assert secret.new_token() != secret.new_token()


ROUTER_KNOB_CHANGES = [
    pytest.param({"router": {"placement": "p2c"}}, id="placement"),
    pytest.param({"router": {"queueLimit": 10, "queueTimeoutS": 2}}, id="queue"),
    pytest.param({"router": {"admission": False}}, id="admission"),
    pytest.param({"router": {"coldStartTimeoutS": 60}}, id="cold-start"),
]


@pytest.mark.parametrize("patch", ROUTER_KNOB_CHANGES)
def test_router_knob_changes_roll_nothing(patch: dict[str, Any]) -> None:
    before, after = target_for("llmservice"), target_for("llmservice", **patch)
    assert router.render(before)["spec"]["template"] == router.render(after)["spec"]["template"]
    assert _template(before) == _template(after)
    old_cm, new_cm = (render.configmap.render(t) for t in (before, after))
    assert old_cm["data"]["knobs.json"] == new_cm["data"]["knobs.json"]
    doc = RouterKnobs.model_validate_json(new_cm["data"]["router.json"])
    assert doc == after.spec.router_knobs() != before.spec.router_knobs()
    annotation = new_cm["metadata"]["annotations"]["sloserve.io/router-knobs-revision"]
    assert annotation == str(doc.revision())
