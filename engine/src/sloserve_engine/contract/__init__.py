"""The engine contract: what crosses a process boundary, declared once.

The operator, the engine server, the vLLM adapter, the simulator and the router
all import these modules instead of re-declaring knob fields, SLO fields,
metric names or pod constants, so a change to the contract is one edit.
"""
