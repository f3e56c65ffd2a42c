"""Drive real vLLM 0.26.0 scheduler objects on a CPU with a FAKE model.

There is no GPU here, so the model is the one fake: every scheduled request
"samples" one token exactly when vLLM says the step completes its known tokens
(``not request.is_prefill_chunk`` right after ``schedule()``), and nothing for
a mid-prefill chunk. Everything else is vLLM's: ``VllmConfig``, the scheduler
class under test, its ``KVCacheManager``, ``Request`` objects and
``update_from_output``. Asynchronous scheduling is emulated the way
``EngineCore.step_with_batch_queue`` runs it: with a batch queue of depth 2 the
next step is scheduled before the previous one's output is processed.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from vllm.config import (
    CacheConfig,
    DeviceConfig,
    KVTransferConfig,
    ModelConfig,
    SchedulerConfig,
    VllmConfig,
)
from vllm.distributed.kv_transfer.kv_connector.v1.offloading.common import (
    OffloadingConnectorMetadata,
    OffloadingWorkerMetadata,
)
from vllm.sampling_params import SamplingParams
from vllm.utils.hashing import sha256
from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
from vllm.v1.core.sched.output import SchedulerOutput
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.executor.abstract import Executor
from vllm.v1.kv_cache_interface import (
    FullAttentionSpec,
    KVCacheConfig,
    KVCacheGroupSpec,
    KVCacheTensor,
)
from vllm.v1.outputs import EMPTY_MODEL_RUNNER_OUTPUT, KVConnectorOutput, ModelRunnerOutput
from vllm.v1.request import Request
from vllm.v1.structured_output import StructuredOutputManager

FAKE_TOKEN_BASE = 100
"""Fake sampled token ids are ``FAKE_TOKEN_BASE + i % 800`` for the i-th sampled token."""


@dataclass(frozen=True, slots=True)
class CpuEngineSpec:
    """The engine shape a CPU run uses (tiny, so that KV pressure is easy to create)."""

    model_dir: Path
    """Folder with a Hugging Face ``config.json`` (no weights or tokenizer needed)."""
    num_blocks: int = 64
    """KV blocks including vLLM's null block."""
    block_size: int = 16
    max_num_seqs: int = 8
    max_num_batched_tokens: int = 128
    max_model_len: int = 1024
    async_scheduling: bool = False
    long_prefill_token_threshold: int = 0
    enable_prefix_caching: bool = False
    additional_config: Mapping[str, Any] = field(default_factory=dict)
    """vLLM's ``additional_config`` (sloserve reads its ``"sloserve"`` section)."""
    kv_offload: bool = False
    """Attach vLLM's CPU KV offload connector (the "swap" path), offloading output KV too."""


def build_vllm_config(spec: CpuEngineSpec) -> VllmConfig:
    """A real ``VllmConfig`` on CPU (``DeviceConfig("cpu")``: "auto" fails without a GPU)."""
    model_config = ModelConfig(
        model=str(spec.model_dir),
        skip_tokenizer_init=True,
        dtype="float16",
        max_model_len=spec.max_model_len,
    )
    scheduler_config = SchedulerConfig(
        max_num_seqs=spec.max_num_seqs,
        max_num_batched_tokens=spec.max_num_batched_tokens,
        max_model_len=spec.max_model_len,
        is_encoder_decoder=False,
        enable_chunked_prefill=True,
        long_prefill_token_threshold=spec.long_prefill_token_threshold,
        policy="fcfs",
        async_scheduling=spec.async_scheduling,
    )
    cache_config = CacheConfig(
        block_size=spec.block_size, enable_prefix_caching=spec.enable_prefix_caching
    )
    config = VllmConfig(
        model_config=model_config,
        scheduler_config=scheduler_config,
        cache_config=cache_config,
        device_config=DeviceConfig(device="cpu"),
        additional_config=dict(spec.additional_config),
    )
    config.cache_config.num_gpu_blocks = spec.num_blocks
    if spec.kv_offload:
        config.kv_transfer_config = KVTransferConfig(
            kv_connector="OffloadingConnector",
            kv_role="kv_both",
            kv_connector_extra_config={"cpu_bytes_to_use": 1 << 26, "offload_prompt_only": False},
        )
    return config


def build_scheduler(
    scheduler_cls: type[Scheduler], config: VllmConfig, spec: CpuEngineSpec
) -> Scheduler:
    """Construct ``scheduler_cls`` exactly as ``EngineCore.__init__`` does, on a toy KV cache."""
    attention = FullAttentionSpec(
        block_size=spec.block_size, num_kv_heads=1, head_size=1, dtype=torch.float32
    )
    kv_cache_config = KVCacheConfig(
        num_blocks=spec.num_blocks,
        kv_cache_tensors=[
            KVCacheTensor(size=spec.num_blocks * attention.page_size_bytes, shared_by=["layer"])
        ],
        kv_cache_groups=[KVCacheGroupSpec(["layer"], attention)],
    )
    return scheduler_cls(
        vllm_config=config,
        kv_cache_config=kv_cache_config,
        structured_output_manager=StructuredOutputManager(config),
        block_size=spec.block_size,
        log_stats=True,
    )


_HASH_READY = False


def make_request(
    request_id: str,
    prompt_tokens: int,
    output_tokens: int,
    block_size: int,
    arrival_time: float | None = None,
    extra_args: Mapping[str, Any] | None = None,
    prompt_seed: str | None = None,
) -> Request:
    """A request that generates exactly ``output_tokens`` (``ignore_eos``, ``max_tokens``).

    Prompts are a deterministic function of ``prompt_seed`` (default: the request
    id), so requests given the same seed share a prefix (prefix caching).
    """
    global _HASH_READY
    if not _HASH_READY:
        init_none_hash(sha256)
        _HASH_READY = True
    seed = zlib.crc32((prompt_seed or request_id).encode())
    params = SamplingParams(
        max_tokens=output_tokens,
        ignore_eos=True,
        extra_args=dict(extra_args) if extra_args else None,
    )
    return Request(
        request_id=request_id,
        prompt_token_ids=[(seed + i) % 900 + 3 for i in range(prompt_tokens)],
        sampling_params=params,
        pooling_params=None,
        arrival_time=arrival_time,
        block_hasher=get_request_block_hasher(block_size, sha256),
    )


def fake_offload_worker(output: SchedulerOutput) -> KVConnectorOutput | None:
    """FAKE worker side of vLLM's CPU KV offload connector: every transfer completes in the
    step that issued it (stores to host memory and loads back alike)."""
    meta = output.kv_connector_metadata
    if not isinstance(meta, OffloadingConnectorMetadata):
        return None
    jobs = {**meta.load_jobs, **meta.store_jobs}
    if not jobs:
        return None
    return KVConnectorOutput(
        finished_recving={job.req_id for job in meta.load_jobs.values()} or None,
        kv_connector_worker_meta=OffloadingWorkerMetadata(completed_jobs=dict.fromkeys(jobs, 1)),
    )


@dataclass(slots=True)
class StepRecord:
    """What one ``schedule()`` call decided (the cross-check compares these)."""

    index: int
    num_scheduled_tokens: dict[str, int]
    new_request_ids: list[str]
    resumed_request_ids: list[str]
    preempted_request_ids: list[str]
    running_after: list[str]


class FakeModelDriver:
    """Runs a scheduler against the fake model, with a batch queue of ``depth`` (1 = sync)."""

    def __init__(self, scheduler: Scheduler, depth: int = 1) -> None:
        if depth not in (1, 2):
            raise ValueError(f"depth must be 1 (sync) or 2 (async scheduling), got {depth}")
        self.scheduler = scheduler
        self.depth = depth
        self.queue: deque[tuple[SchedulerOutput, ModelRunnerOutput]] = deque()
        self.records: list[StepRecord] = []
        self.emitted: dict[str, list[int]] = {}
        """Token ids streamed to each request's client, from ``EngineCoreOutputs``."""
        self.finished: dict[str, str] = {}
        """Request id -> finish reason, as reported to the client."""
        self._sampled: dict[str, int] = {}

    def add(self, request: Request) -> None:
        self.emitted.setdefault(request.request_id, [])
        self.scheduler.add_request(request)

    @property
    def busy(self) -> bool:
        return bool(self.queue) or self.scheduler.has_requests()

    def step(self) -> StepRecord | None:
        """One ``EngineCore.step_with_batch_queue`` iteration; the record if it scheduled."""
        record = None
        if self.scheduler.has_requests():
            output = self.scheduler.schedule()
            record = self._record(output)
            self.queue.appendleft((output, self._fake_model(output)))
            if len(self.queue) < self.depth and self.scheduler.has_requests():
                return record
        elif not self.queue:
            return None
        output, model_output = self.queue.pop()
        for outputs in self.scheduler.update_from_output(output, model_output).values():
            for out in outputs.outputs:
                self.emitted.setdefault(out.request_id, []).extend(out.new_token_ids)
                if out.finish_reason is not None:
                    self.finished[out.request_id] = str(out.finish_reason)
        return record

    def _fake_model(self, output: SchedulerOutput) -> ModelRunnerOutput:
        ids = list(output.num_scheduled_tokens)
        sampled: list[list[int]] = []
        for rid in ids:
            request = self.scheduler.requests[rid]
            if request.is_prefill_chunk:
                sampled.append([])
                continue
            n = self._sampled.get(rid, 0)
            self._sampled[rid] = n + 1
            sampled.append([FAKE_TOKEN_BASE + n % 800])
        return ModelRunnerOutput(
            req_ids=ids,
            req_id_to_index={rid: i for i, rid in enumerate(ids)},
            sampled_token_ids=sampled,
            kv_connector_output=fake_offload_worker(output),
        )

    def _record(self, output: SchedulerOutput) -> StepRecord:
        cached = output.scheduled_cached_reqs
        record = StepRecord(
            index=len(self.records),
            num_scheduled_tokens=dict(output.num_scheduled_tokens),
            new_request_ids=[r.req_id for r in output.scheduled_new_reqs],
            resumed_request_ids=[rid for rid in cached.req_ids if rid in cached.resumed_req_ids],
            preempted_request_ids=sorted(output.preempted_req_ids or ()),
            running_after=[r.request_id for r in self.scheduler.running],
        )
        self.records.append(record)
        return record


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


class FakeExecutor(Executor):
    """FAKE model executor, so that vLLM's real ``EngineCore`` runs on a CPU.

    It reports a toy KV cache of ``num_gpu_blocks_override`` blocks and, like a
    model runner, tracks each request's known tokens from the ``SchedulerOutput``s:
    a scheduled chunk samples one token when it reaches the end of them.
    """

    uses_ray = False
    supports_pp = False

    def _init_executor(self) -> None:
        self._prompt_len: dict[str, int] = {}
        self._sampled: dict[str, int] = {}
        self._pending: deque[ModelRunnerOutput] = deque()
        self._spec = FullAttentionSpec(
            block_size=self.cache_config.block_size,
            num_kv_heads=1,
            head_size=1,
            dtype=torch.float32,
        )

    @classmethod
    def supports_async_scheduling(cls) -> bool:
        return True

    def collective_rpc(
        self,
        method: Any,
        timeout: float | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        non_block: bool = False,
    ) -> Any:
        return []

    def determine_available_memory(self) -> list[int]:
        blocks = self.cache_config.num_gpu_blocks_override or 64
        return [blocks * self._spec.page_size_bytes]

    def get_kv_cache_specs(self) -> list[dict[str, Any]]:
        return [{"layer": self._spec}]

    def initialize_from_config(self, kv_cache_configs: list[KVCacheConfig]) -> None:
        return None

    def execute_model(self, scheduler_output: SchedulerOutput, non_block: bool = False) -> Any:
        """Like a GPU worker: ``None`` until ``sample_tokens``, the empty output at once."""
        output = self._run(scheduler_output)
        result = output if output is EMPTY_MODEL_RUNNER_OUTPUT else None
        if result is None:
            self._pending.append(output)
        return _done(result) if non_block else result

    def sample_tokens(self, grammar_output: Any, non_block: bool = False) -> Any:
        output = self._pending.popleft()
        return _done(output) if non_block else output

    def check_health(self) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def _run(self, output: SchedulerOutput) -> ModelRunnerOutput:
        for rid in output.finished_req_ids:
            self._prompt_len.pop(rid, None)
            self._sampled.pop(rid, None)
        computed: dict[str, int] = {}
        for new in output.scheduled_new_reqs:
            self._prompt_len[new.req_id] = len(new.prompt_token_ids or ())
            self._sampled.setdefault(new.req_id, 0)
            computed[new.req_id] = new.num_computed_tokens
        cached = output.scheduled_cached_reqs
        for rid, n in zip(cached.req_ids, cached.num_computed_tokens, strict=True):
            computed[rid] = n
        ids = list(output.num_scheduled_tokens)
        sampled: list[list[int]] = []
        for rid in ids:
            known = self._prompt_len[rid] + self._sampled[rid]
            if computed[rid] + output.num_scheduled_tokens[rid] < known:
                sampled.append([])
                continue
            sampled.append([FAKE_TOKEN_BASE + self._sampled[rid] % 800])
            self._sampled[rid] += 1
        if not ids:
            return EMPTY_MODEL_RUNNER_OUTPUT
        return ModelRunnerOutput(
            req_ids=ids,
            req_id_to_index={rid: i for i, rid in enumerate(ids)},
            sampled_token_ids=sampled,
        )
