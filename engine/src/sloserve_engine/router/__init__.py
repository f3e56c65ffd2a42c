"""The router's decision core: pure functions and single-threaded objects, no I/O.

``sloserve-router`` (the HTTP process) and the cluster simulator
(:mod:`sloserve_engine.bench.cluster`) both drive these modules, so a
placement measured in the simulator is the placement served over HTTP:

- :mod:`.snapshot`: the state an engine publishes (and how an engine computes it);
- :mod:`.demand`: the KV demand of one request (prompt + predicted output);
- :mod:`.placement`: ranked candidates from random, least-KV, P2C, Dynamo-style
  cost, and the SLO-feasibility policies (greedy and learned);
- :mod:`.shield`: SROLE's per-region shield (atomic reservations with leases);
- :mod:`.admission`: place, hold in a bounded queue, or reject now;
- :mod:`.knobs`: the router knob document.

Nothing here reads a clock: every call takes ``now`` on the caller's clock.
"""
