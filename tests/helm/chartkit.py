"""Helpers for the chart tests: paths, values docs, and `helm template` rendering."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "sloserve"
VALUES = CHART / "values.yaml"
README = CHART / "README.md"
SCHEMA = CHART / "values.schema.json"
DASHBOARD = CHART / "files" / "dashboards" / "sloserve-llmservice.json"
OPERATIONS_DOC = REPO / "docs" / "operations.md"

PARAM = re.compile(r"^\s*## @param (\S+) (.+)$", re.M)


def param_docs() -> dict[str, str]:
    """`## @param path Description` lines of values.yaml, by path."""
    return dict(PARAM.findall(VALUES.read_text()))


def leaf_paths(tree: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of the documented leaves: scalars, lists, and empty or free-form maps.

    A map is a leaf when it is empty or its keys are data rather than settings (a
    security context, labels): those are documented as a whole.
    """
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in FREE_FORM_MAPS:
            yield from leaf_paths(value, path + ".")
        else:
            yield path


FREE_FORM_MAPS = frozenset(
    {"operator.podSecurityContext", "operator.securityContext", "grafanaDashboard.labels"}
)


def default_values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(VALUES.read_text())
    return loaded


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text())
    return loaded


def helm(helm_bin: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(helm_bin), *args], capture_output=True, text=True, check=False, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def set_args(values: Mapping[str, Any]) -> list[str]:
    """`--set-json path=value` for each dotted path."""
    out: list[str] = []
    for path, value in values.items():
        out += ["--set-json", f"{path}={json.dumps(value)}"]
    return out


def render(
    helm_bin: Path, values: Mapping[str, Any] | None = None, release: str = "sloserve"
) -> list[dict[str, Any]]:
    """`helm template` of the chart (no CRDs) as a list of manifests."""
    out = helm(
        helm_bin,
        "template",
        release,
        str(CHART),
        "--namespace",
        "sloserve-system",
        *set_args(values or {}),
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def rule_groups(helm_bin: Path) -> list[dict[str, Any]]:
    rule = one(render(helm_bin, {"prometheusRule.enabled": True}), "PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def rules(helm_bin: Path) -> list[dict[str, Any]]:
    return [r for g in rule_groups(helm_bin) for r in g["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_exprs() -> list[str]:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]
    for var in dashboard()["templating"]["list"]:
        if var["type"] == "query":
            m = LABEL_VALUES.match(var["query"]["query"])
            assert m, f"variable {var['name']}: expected label_values(selector, label)"
            exprs.append(m["selector"])
    return exprs
