"""values.yaml is documented field by field and values.schema.json rejects bad values.

Pure tests (no helm binary): the schema is checked with the jsonschema library here;
test_helm_chart.py checks that helm itself enforces it.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from chartkit import CHART, README, default_values, leaf_paths, param_docs, schema


def test_every_leaf_is_documented_and_every_doc_names_a_leaf() -> None:
    leaves = set(leaf_paths(default_values()))
    documented = set(param_docs())
    assert leaves - documented == set(), "values without a `## @param` line"
    assert documented - leaves == set(), "`## @param` lines naming no value"


def _schema_leaf(path: str) -> dict[str, Any]:
    node = schema()
    for key in path.split("."):
        node = node["properties"][key]
    return node


def test_schema_describes_every_leaf_with_its_values_doc() -> None:
    for path, doc in param_docs().items():
        assert _schema_leaf(path).get("description") == doc, path


def test_schema_closes_every_settings_object() -> None:
    """Unknown keys (typos such as `replicas` for `replicaCount`) must be rejected."""

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, path or "<root>"
            for key, child in node["properties"].items():
                walk(child, f"{path}.{key}".lstrip("."))

    walk(schema(), "")


def test_defaults_are_valid() -> None:
    jsonschema.Draft202012Validator(schema()).validate(default_values())


@pytest.mark.parametrize("case", sorted((CHART / "ci").glob("*-values.yaml")), ids=lambda p: p.name)
def test_ci_cases_are_valid(case: Path) -> None:
    merged = _merge(default_values(), yaml.safe_load(case.read_text()))
    jsonschema.Draft202012Validator(schema()).validate(merged)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _with(path: str, value: Any) -> dict[str, Any]:
    values = copy.deepcopy(default_values())
    node = values
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return values


BAD_VALUES = [
    ("operator.replicaCount", 0),
    ("operator.replicaCount", "2"),
    ("operator.image.pullPolicy", "Sometimes"),
    ("operator.image.digest", "latest"),
    ("operator.watch.namespaces", ["Bad_Namespace"]),
    ("operator.watch.namespaces", ["a", "a"]),
    ("operator.ports.metrics", 80),
    ("operator.resources.requests.memory", "lots"),
    ("operator.livenessProbe.periodSeconds", 0),
    ("operator.replicas", 2),
    ("metrics.service.type", "ExternalName"),
    ("metrics.serviceMonitor.interval", "30 seconds"),
    ("prometheusRule.sloAttainment.defaultTarget", 1.5),
    ("prometheusRule.sloAttainment.defaultTarget", 0),
    ("prometheusRule.kvPressure.threshold", -0.1),
    ("prometheusRule.severity", "page"),
    ("prometheusRule.rateWindow", "5"),
    ("grafanaDashboard.enabled", "yes"),
]


@pytest.mark.parametrize(("path", "value"), BAD_VALUES, ids=[f"{p}={v!r}" for p, v in BAD_VALUES])
def test_schema_rejects(path: str, value: Any) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema()).validate(_with(path, value))


README_ROW = re.compile(r"^\| `(?P<path>[^`]+)` \| (?P<doc>.+) \| `(?P<default>.*)` \|$", re.M)


def test_readme_parameter_table_matches_values_yaml() -> None:
    rows = {m["path"]: (m["doc"], m["default"]) for m in README_ROW.finditer(README.read_text())}
    values = default_values()
    expected = {}
    for path, doc in param_docs().items():
        node: Any = values
        for key in path.split("."):
            node = node[key]
        expected[path] = (doc, json.dumps(node))
    assert rows == expected
