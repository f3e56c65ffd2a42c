"""SLO- and KV-pressure-driven autoscaling of LLMService replicas (docs/autoscaling.md)."""
