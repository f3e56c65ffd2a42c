"""How the process kubelet turns a pod into a local command line (pure rules, no cluster)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

from sloserve_dev.devcluster.kubelet import (
    OPERATOR_ARGV,
    NotRunnable,
    PodProcessSpec,
    ReadinessProbe,
    VolumeRef,
    engine_addresses,
    engines_dns_port,
    pod_process_spec,
    pod_should_run,
    readiness_after_probe,
    readiness_probe,
    rewrite_argv,
    volume_files,
)

ENGINE = ["/venv/bin/sloserve-engine"]
MOUNTS = {"/etc/sloserve/knobs": Path("/tmp/p/volumes/knobs")}


def engine_pod(**status: str) -> dict[str, object]:
    return {
        "metadata": {"name": "llm-0", "namespace": "ns", "uid": "0123456789abcdef"},
        "spec": {
            "nodeName": "gpu-h100-0",
            "terminationGracePeriodSeconds": 60,
            "containers": [
                {
                    "name": "engine",
                    "command": ["sloserve-engine"],
                    "args": ["--host", "0.0.0.0", "--knobs-file", "/etc/sloserve/knobs/knobs.json"],
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    ],
                    "volumeMounts": [{"name": "knobs", "mountPath": "/etc/sloserve/knobs"}],
                }
            ],
            "volumes": [
                {"name": "knobs", "configMap": {"name": "llm-knobs"}},
                {"name": "unused", "secret": {"secretName": "x"}},
            ],
        },
        "status": {"phase": "Running", "podIP": "127.64.0.9", **status},
    }


def test_engine_gets_simulated_flag_pod_ip_and_local_volume_paths() -> None:
    argv = rewrite_argv(
        [
            "sloserve-engine",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--knobs-file=/etc/sloserve/knobs/knobs.json",
        ],
        "127.64.0.9",
        MOUNTS,
        ENGINE,
    )
    assert argv == [
        *ENGINE,
        "--simulated",
        "--host",
        "127.64.0.9",
        "--port",
        "8000",
        "--knobs-file=/tmp/p/volumes/knobs/knobs.json",
    ]


def test_engine_without_host_is_bound_to_pod_ip_before_extra_vllm_args() -> None:
    argv = rewrite_argv(
        ["/usr/bin/sloserve-engine", "--simulated", "--", "--host", "x", "/etc/sloserve/knobs"],
        "127.64.0.2",
        MOUNTS,
        ENGINE,
    )
    assert argv == [
        *ENGINE,
        "--simulated",
        "--host",
        "127.64.0.2",
        "--",
        "--host",
        "x",
        "/etc/sloserve/knobs",
    ]


def test_generic_server_keeps_its_program_and_gets_bind_and_paths_rewritten() -> None:
    argv = rewrite_argv(
        [
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind=0.0.0.0",
            "--directory",
            "/etc/sloserve/knobs",
        ],
        "127.64.0.3",
        MOUNTS,
        ENGINE,
    )
    assert argv == [
        sys.executable,
        "-m",
        "http.server",
        "8080",
        "--bind=127.64.0.3",
        "--directory",
        "/tmp/p/volumes/knobs",
    ]


def test_path_rewrite_respects_path_boundaries() -> None:
    argv = rewrite_argv(["/bin/echo", "/etc/sloserve/knobsX/a"], "127.0.0.5", MOUNTS, ENGINE)
    assert argv == ["/bin/echo", "/etc/sloserve/knobsX/a"]


def test_empty_command_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        rewrite_argv([], "127.0.0.5", MOUNTS, ENGINE)


def test_pod_runs_only_while_running_on_a_simulated_node_and_not_deleting() -> None:
    nodes = {"gpu-h100-0"}
    assert pod_should_run(engine_pod(), nodes)
    assert not pod_should_run(engine_pod(), {"other"})
    assert not pod_should_run(engine_pod(phase="Pending"), nodes)
    assert not pod_should_run(engine_pod(podIP=""), nodes)
    deleting = engine_pod()
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"  # type: ignore[index]
    assert not pod_should_run(deleting, nodes)


def test_process_spec_takes_first_container_env_and_mounted_volumes_only() -> None:
    spec = pod_process_spec(engine_pod())
    assert isinstance(spec, PodProcessSpec)
    assert spec.argv[0] == "sloserve-engine"
    assert dict(spec.env) == {"A": "1", "IP": "127.64.0.9"}
    assert [(v.volume, v.kind, v.source, v.mount_path) for v in spec.volumes] == [
        ("knobs", "configmaps", "llm-knobs", "/etc/sloserve/knobs")
    ]
    assert spec.grace_s == 10.0  # capped: tests must not wait a minute per pod


def test_pod_of_an_unknown_image_without_command_is_not_runnable_and_says_why() -> None:
    pod = engine_pod()
    container = pod["spec"]["containers"][0]  # type: ignore[index]
    del container["command"]
    container["image"] = "nginx:1.27"
    why = pod_process_spec(pod)
    assert isinstance(why, NotRunnable)
    assert why.reason == "NotRunLocally"
    assert "'nginx:1.27'" in why.message and "sloserve/operator" in why.message


def test_operator_image_runs_its_dockerfile_entrypoint_with_the_pods_args() -> None:
    """The chart's operator pod gives only args; the program is the image's ENTRYPOINT."""
    pod = engine_pod()
    pod["spec"]["containers"][0] = {  # type: ignore[index]
        "name": "operator",
        "image": "registry.example:5000/sloserve/operator@sha256:" + "a" * 64,
        "args": ["operator", "--peering=sloserve", "--all-namespaces", "--metrics-port=8080"],
    }
    pod["spec"]["serviceAccountName"] = "sloserve"  # type: ignore[index]
    spec = pod_process_spec(pod)
    assert isinstance(spec, PodProcessSpec)
    assert spec.argv[0] == "sloserve"  # operator/Dockerfile: ENTRYPOINT ["sloserve"]
    assert (spec.service_account, spec.container) == ("sloserve", "operator")
    argv = rewrite_argv(spec.argv, "127.64.0.4", {}, ENGINE)
    assert argv == [
        *OPERATOR_ARGV,
        "operator",
        "--peering=sloserve",
        "--all-namespaces",
        "--metrics-port=8080",
        "--host",
        "127.64.0.4",
    ]


def test_operator_image_without_args_runs_its_cmd() -> None:
    pod = engine_pod()
    pod["spec"]["containers"][0] = {"name": "op", "image": "sloserve/operator:0.1.0"}  # type: ignore[index]
    spec = pod_process_spec(pod)
    assert isinstance(spec, PodProcessSpec)
    assert spec.argv == ("sloserve", "operator", "--all-namespaces")  # ENTRYPOINT + CMD


def test_no_credentials_when_the_pod_opts_out_of_the_token() -> None:
    pod = engine_pod()
    pod["spec"]["automountServiceAccountToken"] = False  # type: ignore[index]
    spec = pod_process_spec(pod)
    assert isinstance(spec, PodProcessSpec) and spec.service_account is None
    default = pod_process_spec(engine_pod())
    assert isinstance(default, PodProcessSpec) and default.service_account == "default"


def test_volume_files_decode_secrets_and_respect_items() -> None:
    secret = VolumeRef("admin", "secrets", "s", "/etc/a")
    token = base64.b64encode(b"s3cret").decode()
    assert volume_files(secret, {"data": {"token": token}}) == {"token": b"s3cret"}
    cm = VolumeRef("k", "configmaps", "c", "/etc/k", items=(("knobs.json", "sub/k.json"),))
    obj = {"data": {"knobs.json": "{}", "other": "x"}}
    assert volume_files(cm, obj) == {"sub/k.json": b"{}"}


def test_readiness_probe_resolves_named_port_and_defaults() -> None:
    container = {
        "ports": [{"name": "http", "containerPort": 8000}],
        "readinessProbe": {
            "httpGet": {"path": "/sloserve/health", "port": "http"},
            "periodSeconds": 5,
        },
    }
    probe = readiness_probe(container)
    assert probe == ReadinessProbe("/sloserve/health", 8000, 5.0, 3, 1.0)
    assert readiness_probe({"readinessProbe": {"httpGet": {"port": 9000}}}) == ReadinessProbe(
        "/", 9000, 10.0, 3
    )
    assert readiness_probe({"readinessProbe": {"httpGet": {"port": "nope"}}}) is None
    assert readiness_probe({"readinessProbe": {"exec": {"command": ["true"]}}}) is None


def test_readiness_follows_kubelet_rule_success_at_once_failure_after_threshold() -> None:
    assert readiness_after_probe(True, False, 2, 3) == (True, 0)
    assert readiness_after_probe(False, True, 0, 3) == (True, 1)
    assert readiness_after_probe(False, True, 1, 3) == (True, 2)
    assert readiness_after_probe(False, True, 2, 3) == (False, 3)
    assert readiness_after_probe(False, False, 0, 3) == (False, 1)  # never ready yet


def test_router_runs_the_router_module_and_reads_engines_from_a_file() -> None:
    """No cluster DNS here: ``--engines-dns`` becomes a file the kubelet keeps current."""
    argv = rewrite_argv(
        ["sloserve-router", "--host", "0.0.0.0", "--engines-dns", "llm-engines.ns.svc:8000"],
        "127.64.0.7",
        MOUNTS,
        ENGINE,
        Path("/tmp/p/engines"),
    )
    assert argv == [
        sys.executable,
        "-m",
        "sloserve_engine.router.cli",
        "--host",
        "127.64.0.7",
        "--engines-file",
        "/tmp/p/engines",
    ]
    assert engines_dns_port(["x", "--engines-dns=llm-engines.ns.svc:9000"]) == 9000
    assert engines_dns_port(["x", "--engines", "a:1"]) is None


def _engine(name: str, ip: str, ready: bool, service: str = "llm", ns: str = "ns") -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app.kubernetes.io/name": "sloserve-engine", "sloserve.io/service": service},
        },
        "status": {
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_engine_addresses_are_the_services_ready_engine_pods() -> None:
    router = _engine("llm-router-0", "127.0.0.9", True)
    router["metadata"]["labels"]["app.kubernetes.io/name"] = "sloserve-router"
    pods = [
        _engine("b", "127.0.0.3", True),
        _engine("a", "127.0.0.2", True),
        _engine("starting", "127.0.0.4", False),
        _engine("other", "127.0.0.5", True, service="other"),
        _engine("elsewhere", "127.0.0.6", True, ns="prod"),
        router,
    ]
    assert engine_addresses(pods, "ns", "llm", 8000) == "127.0.0.2:8000\n127.0.0.3:8000\n"
    assert engine_addresses([], "ns", "llm", 8000) == ""  # scaled to zero: no engine
