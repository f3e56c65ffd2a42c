"""Project-wide pytest plugins: real-control-plane fixtures (k8s, namespace, kubelet)."""

pytest_plugins = ["sloserve_dev.devcluster.pytest_plugin"]
