"""Project-wide pytest plugins and settings.

Real-control-plane fixtures (k8s, namespace, kubelet) come from the dev-cluster plugin.
Hypothesis runs without its timing health checks and deadlines: the suite shares two cores
with control-plane processes, so "data generation too slow" says nothing about the code
under test, while a failing property still fails (and prints its reproduction blob).
"""

from hypothesis import HealthCheck, settings

pytest_plugins = ["sloserve_dev.devcluster.pytest_plugin"]

settings.register_profile(
    "sloserve",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("sloserve")
