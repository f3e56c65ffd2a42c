"""A real Kubernetes control plane on loopback for tests and the local demo.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run as plain
processes (built by ``hack/testenv.sh``); kwok plays the kubelet for simulated GPU nodes and
the process kubelet (``kubelet.py``) runs each engine pod as a local process at its pod IP.
"""
