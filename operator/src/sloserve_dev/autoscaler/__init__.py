"""Closed-loop autoscaler runs without Kubernetes (:mod:`.harness`, :mod:`.fleet`) and the
autoscaler-vs-baseline benchmark (:mod:`.bench`)."""
