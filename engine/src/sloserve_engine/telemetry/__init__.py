"""What both executors report: Prometheus metrics and the attainment window.

Kept apart from the HTTP server so the vLLM adapter (in vLLM's engine-core
process) reports through the same code without importing the server.
"""
