"""The vLLM 0.26.0 source the adapter relies on, pinned by hash (CI fails on silent drift).

The adapter never copies vLLM's scheduling loop; it relies on what these
methods do (FCFS victim = ``running.pop()``, waiting queues read once per
step, the threshold and budget read per step, ``allocate_slots`` returning
``None`` for "does not fit", utility RPCs dispatched by name). If the pin moves,
re-read each changed method, re-run the exactness test, then update the hash.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect

VLLM_VERSION = "0.26.0"

RELIED_ON: dict[str, str] = {
    "vllm.v1.core.sched.scheduler:Scheduler.__init__": "6ba6e7c3a2cae5ee9c6fdf76fd356a700caca38e82bc761a52f3082a3c7040ff",  # noqa: E501
    "vllm.v1.core.sched.scheduler:Scheduler.schedule": "491d8fe7c9e3c94cff54bd7f3b8fcfd18c6a86eb04561a06fb5f1a1ac5ca4dee",  # noqa: E501
    "vllm.v1.core.sched.scheduler:Scheduler._preempt_request": "a7385e074e61792e9a193ba934ccf9ef540c181cd4c2750474cba6010dfdd1dc",  # noqa: E501
    "vllm.v1.core.sched.scheduler:Scheduler._free_request": "e3862755a3e45e0035e6e2aa8d3f185cc57a27b52ae3f98b0f72545be717e55e",  # noqa: E501
    "vllm.v1.core.sched.scheduler:Scheduler.add_request": "199b81ae87110dcf950dfcd7a92704a622a528d4508dc22bcffcf25a3a94d455",  # noqa: E501
    "vllm.v1.core.sched.scheduler:Scheduler.update_from_output": "844367185957e48a2323003d93032f6c7d5bff8ddc25d1432192ce4ced981bdf",  # noqa: E501
    "vllm.v1.core.sched.scheduler:Scheduler._update_request_with_output": "389ae7ea2b1a34e6c54cf868c6c143efc1faa2c61137ee2f06ebfdc2d9d95dac",  # noqa: E501
    "vllm.v1.core.sched.scheduler:Scheduler._select_waiting_queue_for_scheduling": "36e0e42a711322277a2e82d23f9e4f81f093f4c60e11267c2db14bf91512856d",  # noqa: E501
    "vllm.v1.core.sched.scheduler:Scheduler._is_blocked_waiting_status": "cb0b1f6343cfb1e675fb878dfb6e8f08ea54c95ae9a14526b1102f057508d4c0",  # noqa: E501
    "vllm.v1.core.sched.async_scheduler:AsyncScheduler._update_after_schedule": "c49d8b90a61c2b1d48d2ead2700d03e44aa766fd28edf9383ad26139e3f0f4a6",  # noqa: E501
    "vllm.v1.core.sched.async_scheduler:AsyncScheduler._update_request_with_output": "0a8d94d5aaa21fd9d529f4eb3d008e95883bd830678a950201e91784603a35e7",  # noqa: E501
    "vllm.v1.core.kv_cache_manager:KVCacheManager.allocate_slots": "ad07182657498a47459dc76058251431f88ccede885f649aae447973bb82a090",  # noqa: E501
    "vllm.v1.core.sched.request_queue:FCFSRequestQueue": "8854c31e2d68c7762f55e3531e95dc380387481b81a6ed71df4c644f0cd81bd4",  # noqa: E501
    "vllm.v1.engine.core:EngineCoreProc._handle_client_request": "617c2563701eaa884e1a0972f013f1a0e976c9199f10055621c9904c1af2876f",  # noqa: E501
    "vllm.v1.engine.core:EngineCore.step_with_batch_queue": "84d0cd0ecaa08eb2f0e1b25d3d28e66415155370c4808d23f89faff9c99116c1",  # noqa: E501
}
"""``module:qualname`` -> sha256 of ``inspect.getsource`` in vLLM 0.26.0."""


def source_sha256(target: str) -> str:
    """sha256 of the installed source of ``module:qualname``."""
    module, qualname = target.split(":")
    obj: object = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()  # type: ignore[arg-type]


def drifted() -> dict[str, str]:
    """Targets whose installed source differs from 0.26.0's, with their current hash."""
    current = {target: source_sha256(target) for target in RELIED_ON}
    return {t: h for t, h in current.items() if h != RELIED_ON[t]}
