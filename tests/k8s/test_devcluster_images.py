"""Which images the process kubelet can run, read from this repository's Dockerfiles."""

from __future__ import annotations

import pytest

from sloserve_dev.devcluster.images import (
    ImageConfig,
    dockerfile_config,
    image_config,
    image_repository,
)


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("sloserve/operator:0.1.0", "sloserve/operator"),
        ("sloserve/operator", "sloserve/operator"),
        ("registry.example:5000/sloserve/operator:0.1.0", "sloserve/operator"),
        ("registry.example/sloserve/engine@sha256:" + "b" * 64, "sloserve/engine"),
        ("localhost/sloserve/engine:dev", "sloserve/engine"),
        ("nginx", "nginx"),
        ("library/nginx:1.27", "nginx"),
        ("myorg/sloserve-operator:1", "myorg/sloserve-operator"),
    ],
)
def test_image_repository_strips_registry_tag_and_digest(image: str, repository: str) -> None:
    assert image_repository(image) == repository


def test_the_final_stage_exec_form_entrypoint_and_cmd_win() -> None:
    text = (
        'FROM python AS build\nENTRYPOINT ["build-only"]\n'
        'FROM python\nENTRYPOINT ["a"]\nCMD ["x"]\nENTRYPOINT ["sloserve", "-v"]\n'
    )
    assert dockerfile_config(text) == ImageConfig(("sloserve", "-v"), ("x",))


def test_known_images_come_from_the_repositorys_dockerfiles() -> None:
    operator = image_config("sloserve/operator:0.1.0")
    engine = image_config("sloserve/engine:0.1.0")
    assert operator == ImageConfig(("sloserve",), ("operator", "--all-namespaces"))
    assert engine is not None and engine.entrypoint == ("sloserve-engine",)
    assert image_config("nginx:1.27") is None


def test_command_and_args_follow_kubernetes_rules() -> None:
    config = ImageConfig(("sloserve",), ("operator", "--all-namespaces"))
    assert config.argv(None, None) == ("sloserve", "operator", "--all-namespaces")
    assert config.argv(None, ["operator", "-n", "a"]) == ("sloserve", "operator", "-n", "a")
    assert config.argv(["python"], None) == ("python",)  # a command drops the image's CMD
