"""Discrete-event simulator: vLLM 0.26.0's scheduler loop on a modelled GPU."""

from .costmodel import SimProfile, load_profile
from .engine import EngineStats, SimConfig, SimEngine, StepResult

__all__ = ["EngineStats", "SimConfig", "SimEngine", "SimProfile", "StepResult", "load_profile"]
