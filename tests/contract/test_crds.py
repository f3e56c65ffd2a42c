"""The generated CRDs and reference page match the pydantic models; samples are valid."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from sloserve_operator import crdgen
from sloserve_operator.api import v1alpha1 as api

ROOT = crdgen.REPO_ROOT
EXAMPLES = sorted((ROOT / "docs/examples").glob("*.yaml"))


@pytest.mark.parametrize("rel", sorted(crdgen.rendered_files(), key=str), ids=str)
def test_generated_file_matches_models(rel: Path) -> None:
    on_disk = (ROOT / rel).read_text() if (ROOT / rel).exists() else ""
    assert on_disk == crdgen.rendered_files()[rel], f"{rel} is out of date: run `make crds`"


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    args = argparse.Namespace(check=True, root=tmp_path)
    assert crdgen.run(args) == 1  # nothing written yet: every file is stale
    assert crdgen.run(argparse.Namespace(check=False, root=tmp_path)) == 0
    assert crdgen.run(args) == 0
    (tmp_path / crdgen.CRD_DIRS[1] / crdgen.CRD_FILE).write_text("edited by hand\n")
    assert crdgen.run(args) == 1


def _walk(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += _walk(child, f"{path}.{name}")
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_schema_is_structural_and_documented() -> None:
    for path, node in _walk(_schema(), ""):
        assert not {"$ref", "$defs", "anyOf", "allOf", "oneOf", "title", "const"} & node.keys(), (
            path
        )
        assert "type" in node, f"{path} has no type"
        scalar_item = path.endswith(("[]", "{}")) and "properties" not in node
        exempt = scalar_item or path == ".metadata"  # the API server forbids more than a type
        assert exempt or node.get("description"), f"{path} has no description"
        if "properties" in node:
            assert "additionalProperties" not in node, path
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(key, True), bool), f"{path}.{key} must be a boolean"
        if node.get("default", 0) is None:
            pytest.fail(f"{path} has a null default")


def test_every_spec_field_is_defaulted_or_required() -> None:
    for path, node in _walk(_schema()["properties"]["spec"], "spec"):
        for name, child in node.get("properties", {}).items():
            ok = "default" in child or name in node.get("required", ()) or child.get("nullable")
            assert ok, f"{path}.{name} has neither a default nor is required/optional"


def test_cel_rules_and_subresources_present() -> None:
    version = crdgen.crd()["spec"]["versions"][0]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert version["subresources"]["status"] == {}
    rules = [
        r["rule"] for _, n in _walk(_schema(), "") for r in n.get("x-kubernetes-validations", [])
    ]
    assert "self.minReplicas <= self.maxReplicas" in rules
    assert "self.chunkMinTokens <= self.chunkMaxTokens" in rules
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert names[:8] == [
        *("Ready", "Replicas", "Routers", "Activity", "SLO", "KV-Pressure", "Policy", "Engines")
    ]
    assert {"Endpoint", "Last-Request"} <= set(names)
    assert "self.autoscaling.minReplicas > 0 || self.router.replicas > 0" in rules
    assert names[-1] == "Age"


def test_peering_crds_cover_both_scopes() -> None:
    scopes = {d["metadata"]["name"]: d["spec"]["scope"] for d in crdgen.peering_crds()}
    assert scopes == {
        "clusterkopfpeerings.kopf.dev": "Cluster",
        "kopfpeerings.kopf.dev": "Namespaced",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_against_model(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        obj = api.LLMService.model_validate(doc)
        assert obj.metadata["name"]


def test_the_demo_sample_is_what_the_issue_asks_for() -> None:
    doc = yaml.safe_load((ROOT / "docs/examples/llmservice.yaml").read_text())
    spec = api.LLMService.model_validate(doc).spec
    assert "Llama-3.1-8B" in spec.model.name
    assert (spec.scheduler.policy, spec.slo.ttft_ms, spec.slo.tbt_ms) == ("sloserve", 1000, 100)
    assert (spec.autoscaling.min_replicas, spec.autoscaling.max_replicas) == (1, 4)


BAD_SPECS = [
    pytest.param(
        {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}, "minReplicas", id="min>max"
    ),
    pytest.param({"scheduler": {"reservationRatio": 1.5}}, "reservationRatio", id="ratio-1.5"),
    pytest.param({"slo": {"ttftMs": -5}}, "ttftMs", id="negative-ttft"),
    pytest.param({"scheduler": {"policy": "fastest"}}, "policy", id="unknown-policy"),
    pytest.param(
        {"scheduler": {"chunkMinTokens": 512, "chunkMaxTokens": 256}}, "chunkMinTokens", id="chunks"
    ),
    pytest.param({"engine": {"tensorParallelSize": 2}}, "gpu.count", id="tp>gpus"),
    pytest.param({"autoscaling": {"metricsSource": "prometheus"}}, "prometheusUrl", id="prom-url"),
    pytest.param({"engine": {"gpuCount": 2}}, "gpuCount", id="unknown-field"),
    pytest.param(
        {"autoscaling": {"minReplicas": 0}, "router": {"replicas": 0}},
        "router.replicas",
        id="zero-without-router",
    ),
    pytest.param(
        {"autoscaling": {"minReplicas": 0, "enabled": False}}, "enabled", id="zero-no-autoscaler"
    ),
    pytest.param(
        {"autoscaling": {"minReplicas": 0, "scaleToZeroAfterS": 60}},
        "scaleToZeroAfterS",
        id="idle-window<down-window",
    ),
    pytest.param({"autoscaling": {"scaleToZeroAfterS": 5}}, "scaleToZeroAfterS", id="idle-5s"),
    pytest.param({"router": {"replicas": -1}}, "replicas", id="router-replicas"),
    pytest.param(
        {"engine": {"simulatedStartupDelayS": 5}}, "simulatedStartupDelayS", id="delay-real"
    ),
    pytest.param({"router": {"placement": "fastest"}}, "placement", id="router-placement"),
    pytest.param({"router": {"queueTimeoutS": 5000}}, "queueTimeoutS", id="queue-timeout-max"),
    pytest.param({"router": {"queueLimit": -1}}, "queueLimit", id="queue-limit"),
    pytest.param({"router": {"queueTimeoutS": 0}}, "queueTimeoutS", id="queue-timeout"),
    pytest.param({"router": {"coldStartTimeoutS": 0}}, "coldStartTimeoutS", id="cold-timeout"),
    pytest.param({"router": {"resources": {"cpu": "lots"}}}, "cpu", id="router-cpu"),
    pytest.param({"slo": {"sloClasses": ["other"]}}, "sloClasses", id="slo-class-other"),
    pytest.param({"slo": {"sloClasses": ["a", "a"]}}, "sloClasses", id="slo-class-repeat"),
    pytest.param(
        {"slo": {"sloClasses": [f"c{i}" for i in range(17)]}}, "sloClasses", id="slo-classes-17"
    ),
]


@pytest.mark.parametrize(("patch", "field"), BAD_SPECS)
def test_model_rejects_bad_spec_naming_the_field(patch: dict[str, Any], field: str) -> None:
    spec = {"model": {"name": "m"}, **patch}
    with pytest.raises(ValidationError) as err:
        api.LLMServiceSpec.model_validate(spec)
    assert field in str(err.value)


def test_scheduler_bounds_and_defaults_are_the_knob_documents() -> None:
    spec = api.LLMServiceSpec.model_validate({"model": {"name": "m"}})
    from sloserve_engine.contract.knobs import Knobs

    assert spec.knobs() == Knobs()
    knob_fields = Knobs.model_fields
    for name, info in api.SchedulerSpec.model_fields.items():
        assert info.metadata == knob_fields[name].metadata, name
        assert info.default == knob_fields[name].default, name


def test_declared_slo_classes_reach_the_knob_document() -> None:
    spec = api.LLMServiceSpec.model_validate(
        {"model": {"name": "m"}, "slo": {"sloClass": "gold", "sloClasses": ["gold", "silver"]}}
    )
    assert spec.knobs().slo_defaults.declared_classes() == {"gold", "silver"}
    rules = str(api.SLOSpec.model_json_schema())
    assert "self.sloClasses.exists(c, c == 'other')" in rules


def test_router_and_scale_to_zero_defaults() -> None:
    spec = api.LLMServiceSpec.model_validate({"model": {"name": "m"}})
    r = spec.router
    assert (r.replicas, r.cold_start_timeout_s) == (2, 300)
    assert (r.resources.cpu, r.resources.memory) == ("1", "1Gi")
    assert spec.autoscaling.scale_to_zero_after_s == 900
    zero = api.LLMServiceSpec.model_validate(
        {"model": {"name": "m"}, "autoscaling": {"minReplicas": 0}}
    )
    assert zero.desired_replicas() == 0


def test_router_bounds_and_defaults_are_the_router_knob_document() -> None:
    from sloserve_engine.router.knobs import RouterKnobs

    spec = api.LLMServiceSpec.model_validate({"model": {"name": "m"}})
    assert spec.router_knobs() == RouterKnobs()
    for name in ("placement", "queue_limit", "queue_timeout_s", "cold_start_timeout_s"):
        info, knob = api.RouterSpec.model_fields[name], RouterKnobs.model_fields[name]
        assert (info.metadata, info.default) == (knob.metadata, knob.default), name
    tuned = api.LLMServiceSpec.model_validate(
        {
            "model": {"name": "m"},
            "router": {"queueLimit": 7},
            "scheduler": {"predictorConfidence": 0.5},
        }
    ).router_knobs()
    assert (tuned.queue_limit, tuned.predictor_confidence) == (7, 0.5)


@pytest.mark.parametrize("name", ["9lives", "Upper", "a" * 56, "trailing-"])
def test_object_name_must_fit_child_names(name: str) -> None:
    with pytest.raises(ValidationError, match=r"metadata\.name"):
        api.LLMService.model_validate(
            {"metadata": {"name": name}, "spec": {"model": {"name": "m"}}}
        )
    rules = [r["rule"] for r in _schema()["x-kubernetes-validations"]]
    assert any("self.metadata.name.matches" in r for r in rules)
