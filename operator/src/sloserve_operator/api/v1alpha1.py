"""``LLMService`` (``sloserve.io/v1alpha1``): the one source of the API.

The CRD in ``crds/``, the Helm chart's copy and ``docs/crd-reference.md`` are generated from
these models (``sloserve crds``), so a field exists, is defaulted, documented and validated in
exactly one place. Cross-field rules are declared once as :class:`Rule` objects: the same rule
becomes a CEL ``x-kubernetes-validations`` entry for the API server and a pydantic check for
the operator and the tests, so both reject the same specs with the same message.

Scheduler and SLO bounds, patterns and defaults are copied from the engine contract
(``sloserve_engine.contract``), router ones from the router's (``sloserve_engine.router.knobs``):
a spec the API server accepts is a document every engine and router accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from sloserve_engine.contract.knobs import Knobs, PolicyName, PreemptionModeName, SLODefaults
from sloserve_engine.contract.slo import MAX_SLO_CLASSES, OTHER_SLO_CLASS, SLOClass
from sloserve_engine.router.knobs import PlacementName, RouterKnobs

GROUP = "sloserve.io"
VERSION = "v1alpha1"
KIND = "LLMService"
PLURAL = "llmservices"
SINGULAR = "llmservice"
SHORT_NAMES = ("llms",)
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class Rule:
    """A cross-field constraint, written once for both the API server (CEL) and Python."""

    cel: str
    message: str
    field_path: str
    """Where the API server reports the error; "" = the object itself."""
    check: Callable[[Any], bool]

    def as_cel(self) -> dict[str, str]:
        out = {"rule": self.cel, "message": self.message}
        return {**out, "fieldPath": self.field_path} if self.field_path else out


class _Model(BaseModel):
    """camelCase on the wire, unknown fields rejected, cross-field rules enforced."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for rule in self.rules:
            if not rule.check(self):
                where = rule.field_path.lstrip(".")
                raise ValueError(f"{where}: {rule.message}" if where else rule.message)
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema: dict[str, Any] = handler(core_schema)
        if cls.rules:
            target = handler.resolve_ref_schema(schema)
            target["x-kubernetes-validations"] = [rule.as_cel() for rule in cls.rules]
        return schema


_BOUND_TYPES = {
    "ge": "Ge",
    "gt": "Gt",
    "le": "Le",
    "lt": "Lt",
    "min_length": "MinLen",
    "max_length": "MaxLen",
}


def _knob(name: str, description: str | None = None, model: type[BaseModel] = Knobs) -> Any:
    """A spec field with the contract's default, numeric bounds and pattern (single source)."""
    info = model.model_fields[name]
    bounds: dict[str, Any] = {}
    for meta in info.metadata:
        for attr in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            if isinstance(meta, getattr(annotated_types, _BOUND_TYPES[attr])):
                bounds[attr] = getattr(meta, attr)
        if isinstance(meta, StringConstraints):
            for attr in ("min_length", "max_length", "pattern"):
                if getattr(meta, attr) is not None:
                    bounds[attr] = getattr(meta, attr)
    return Field(default=info.default, description=description or info.description, **bounds)


# ---------------------------------------------------------------------------------------- spec


class ModelSpec(_Model):
    """Which model the engines serve."""

    name: str = Field(
        min_length=1,
        max_length=253,
        description="Model to load: a Hugging Face hub id or a path inside the engine image.",
    )
    served_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Name clients send in `model`; defaults to `name`.",
    )
    source: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="Where the weights come from (passed to vLLM as the model path) when it "
        "differs from `name`, e.g. a local directory of a mounted volume.",
    )


class GPUSpec(_Model):
    """GPUs each replica requests."""

    count: int = Field(default=1, ge=1, le=16, description="GPUs per replica.")
    resource_name: str = Field(
        default="nvidia.com/gpu",
        min_length=1,
        max_length=253,
        description="Extended resource name the device plugin advertises.",
    )


class ResourcesSpec(_Model):
    """Non-GPU resources of the engine container (requests = limits for memory)."""

    cpu: str = Field(
        default="4",
        pattern=r"^[0-9]+(\.[0-9]+)?m?$",
        description="CPU request, a Kubernetes quantity.",
    )
    memory: str = Field(
        default="32Gi",
        pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$",
        description="Memory request and limit, a Kubernetes quantity.",
    )


class EngineSpec(_Model):
    """How each replica runs: image, parallelism and vLLM settings."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.gpu.count >= self.tensorParallelSize",
            message="gpu.count must be at least tensorParallelSize",
            field_path=".gpu.count",
            check=lambda e: e.gpu.count >= e.tensor_parallel_size,
        ),
        Rule(
            cel="self.simulated || self.simulatedStartupDelayS == 0.0",
            message="simulatedStartupDelayS applies to simulated engines only",
            field_path=".simulatedStartupDelayS",
            check=lambda e: e.simulated or e.simulated_startup_delay_s == 0.0,
        ),
    )

    image: str = Field(
        default="sloserve/engine:0.1.0",
        min_length=1,
        max_length=1024,
        description="Container image with vLLM and `sloserve-engine`.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="Kubernetes image pull policy."
    )
    tensor_parallel_size: int = Field(
        default=1, ge=1, le=16, description="GPUs one model copy is split across (vLLM TP)."
    )
    gpu: GPUSpec = Field(default_factory=GPUSpec, description="GPUs requested per replica.")
    resources: ResourcesSpec = Field(
        default_factory=ResourcesSpec, description="CPU and memory per replica."
    )
    max_model_len: int | None = Field(
        default=None, ge=16, le=10_485_760, description="Context length cap; vLLM's default."
    )
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0.0, le=1.0, description="Share of GPU memory vLLM may use."
    )
    profile: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Cost-model profile (GPU x model) used by simulated engines and the "
        "scheduler's step-time model, e.g. `h200-llama-3.1-8b`.",
    )
    kv_tokens: int | None = Field(
        default=None,
        ge=1,
        description="KV-cache capacity in tokens for simulated engines; the profile's if unset.",
    )
    simulated: bool = Field(
        default=False,
        description="Run the simulator instead of vLLM (no GPU work): demos and tests.",
    )
    simulated_startup_delay_s: float = Field(
        default=0.0,
        ge=0.0,
        le=3600.0,
        description="Simulated engines wait this long before serving, like a model load, so "
        "that a cold start from zero replicas is visible in demos and tests.",
    )
    extra_args: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Extra `vllm serve` arguments, appended after the rendered ones.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the engine pods must match."
    )


class SLOSpec(_Model):
    """Service-level objective: per-request defaults and the attainment goal."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=f"self.sloClass != '{OTHER_SLO_CLASS}' && "
            f"!self.sloClasses.exists(c, c == '{OTHER_SLO_CLASS}')",
            message=f"'{OTHER_SLO_CLASS}' is reserved for undeclared SLO classes",
            field_path=".sloClasses",
            check=lambda s: OTHER_SLO_CLASS not in (s.slo_class, *s.slo_classes),
        ),
        Rule(
            cel="self.sloClasses.all(c, self.sloClasses.filter(x, x == c).size() == 1)",
            message="sloClasses must not repeat a name",
            field_path=".sloClasses",
            check=lambda s: len(set(s.slo_classes)) == len(s.slo_classes),
        ),
    )

    slo_class: str = _knob("slo_class", "SLO class of requests that carry none.", SLODefaults)
    ttft_ms: float = _knob("ttft_ms", "Time-to-first-token target in milliseconds.", SLODefaults)
    tbt_ms: float = _knob("tbt_ms", "Mean time-between-tokens target in milliseconds.", SLODefaults)
    slo_classes: list[SLOClass] = Field(
        default_factory=lambda: list(SLODefaults().slo_classes),
        max_length=MAX_SLO_CLASSES,
        description=SLODefaults.model_fields["slo_classes"].description,
    )
    attainment_target: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="Share of requests that must meet both targets; autoscaling scales up "
        "below it.",
    )
    window_seconds: int = Field(
        default=60, ge=5, le=3600, description="Sliding window over which attainment is measured."
    )


class SchedulerSpec(_Model):
    """Scheduler knobs. Changes apply live to running engines, without a restart."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.chunkMinTokens <= self.chunkMaxTokens",
            message="chunkMinTokens must not exceed chunkMaxTokens",
            field_path=".chunkMinTokens",
            check=lambda s: s.chunk_min_tokens <= s.chunk_max_tokens,
        ),
    )

    policy: PolicyName = _knob("policy", "Scheduling policy; `vllm` is stock vLLM FCFS.")
    reservation_ratio: float = _knob("reservation_ratio")
    predictor_confidence: float = _knob("predictor_confidence")
    chunk_min_tokens: int = _knob("chunk_min_tokens")
    chunk_max_tokens: int = _knob("chunk_max_tokens")
    preemption_mode: PreemptionModeName = _knob(
        "preemption_mode", "Preemption: `auto` picks swap or recompute by predicted latency."
    )


class AutoscalingSpec(_Model):
    """Replica bounds and the signals the autoscaler steers by."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="minReplicas must not exceed maxReplicas",
            field_path=".minReplicas",
            check=lambda a: a.min_replicas <= a.max_replicas,
        ),
        Rule(
            cel="self.metricsSource != 'prometheus' || has(self.prometheusUrl)",
            message="prometheusUrl is required when metricsSource is prometheus",
            field_path=".prometheusUrl",
            check=lambda a: a.metrics_source != "prometheus" or a.prometheus_url is not None,
        ),
        Rule(
            cel="self.minReplicas > 0 || self.enabled",
            message="minReplicas 0 needs enabled: only the autoscaler wakes a service from zero",
            field_path=".minReplicas",
            check=lambda a: a.min_replicas > 0 or a.enabled,
        ),
        Rule(
            cel="self.minReplicas > 0 || "
            "self.scaleToZeroAfterS >= self.scaleDownStabilizationSeconds",
            message="scaleToZeroAfterS must be at least scaleDownStabilizationSeconds: a service "
            "must not go to zero sooner than it may drop one replica",
            field_path=".scaleToZeroAfterS",
            check=lambda a: (
                a.min_replicas > 0 or a.scale_to_zero_after_s >= a.scale_down_stabilization_seconds
            ),
        ),
    )

    enabled: bool = Field(
        default=True,
        description="Let the autoscaler set `spec.replicas`; when false only users do.",
    )
    min_replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Fewest replicas. 0 allows scale to zero after `scaleToZeroAfterS` without "
        "traffic; the router then holds new requests while an engine starts (needs "
        "`router.replicas` >= 1).",
    )
    max_replicas: int = Field(default=10, ge=1, le=1000, description="Most replicas.")
    kv_pressure_target: float = Field(
        default=0.8,
        gt=0.0,
        le=1.0,
        description="KV-cache demand over capacity per replica the autoscaler aims for.",
    )
    slo_attainment_target: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Attainment the autoscaler steers to; `slo.attainmentTarget` when unset.",
    )
    tolerance: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Relative deviation from a target ignored before scaling (HPA style).",
    )
    scale_up_stabilization_seconds: int = Field(
        default=10, ge=0, le=3600, description="Window whose lowest recommendation scales up."
    )
    scale_down_stabilization_seconds: int = Field(
        default=300, ge=0, le=3600, description="Window whose highest recommendation scales down."
    )
    fast_path_attainment_drop: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Attainment this far below target scales up at once, skipping stabilization.",
    )
    scale_up_max_step: int = Field(
        default=4, ge=1, le=100, description="Most replicas added in one decision."
    )
    scale_down_max_step: int = Field(
        default=1, ge=1, le=100, description="Most replicas removed in one decision."
    )
    interval_seconds: int = Field(
        default=5, ge=1, le=600, description="How often the autoscaler evaluates."
    )
    metrics_source: Literal["pods", "prometheus"] = Field(
        default="pods",
        description="Scrape each ready pod's /metrics directly, or query Prometheus.",
    )
    prometheus_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        max_length=2048,
        description="Prometheus base URL when metricsSource is prometheus.",
    )
    metrics_timeout_seconds: float = Field(
        default=2.0, gt=0.0, le=60.0, description="Timeout of one metrics read."
    )
    scale_to_zero_after_s: int = Field(
        default=900,
        ge=30,
        le=604_800,
        description="With minReplicas 0: scale to zero once no request arrived and none was "
        "queued or running for this long. Long enough that a request every few minutes keeps "
        "one replica warm instead of paying a cold start each time.",
    )


class RouterResourcesSpec(_Model):
    """CPU and memory of each router pod (no GPU)."""

    cpu: str = Field(
        default="1",
        pattern=r"^[0-9]+(\.[0-9]+)?m?$",
        description="CPU request, a Kubernetes quantity: one core relays one busy engine's tokens.",
    )
    memory: str = Field(
        default="1Gi",
        pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$",
        description="Memory request and limit, a Kubernetes quantity.",
    )


class RouterSpec(_Model):
    """The router tier in front of the engines: SLO-aware placement, a bounded queue and
    admission control. Knobs (all but `replicas` and `resources`) apply live to running routers,
    without a restart."""

    replicas: int = Field(
        default=2,
        ge=0,
        le=100,
        description="Router pods, all active. 0 removes the tier: the Service then selects the "
        "engines directly and kube-proxy places requests at random.",
    )
    placement: PlacementName = _knob(
        "placement",
        "How a router picks an engine: `slo-greedy` (default: the best heuristic in the "
        "cluster simulator), `sloserve` (learned), `least-kv`, `p2c`, `dynamo` or `random`.",
        RouterKnobs,
    )
    queue_limit: int = _knob("queue_limit", model=RouterKnobs)
    queue_timeout_s: float = _knob("queue_timeout_s", model=RouterKnobs)
    cold_start_timeout_s: float = _knob("cold_start_timeout_s", model=RouterKnobs)
    admission: bool = _knob("admission", model=RouterKnobs)
    resources: RouterResourcesSpec = Field(
        default_factory=RouterResourcesSpec, description="CPU and memory per router pod."
    )


class LLMServiceSpec(_Model):
    """Desired state of an LLM service."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.autoscaling.minReplicas > 0 || self.router.replicas > 0",
            message="autoscaling.minReplicas 0 needs router.replicas >= 1: the router holds "
            "requests while an engine starts",
            field_path=".autoscaling.minReplicas",
            check=lambda s: s.autoscaling.min_replicas > 0 or s.router.replicas > 0,
        ),
    )

    model: ModelSpec = Field(description="Model served.")
    replicas: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Replica count (the scale subresource): written by the autoscaler or by "
        "`kubectl scale`; clamped to [minReplicas, maxReplicas]; minReplicas when unset. Leave "
        "it out of git when autoscaling is enabled.",
    )
    engine: EngineSpec = Field(default_factory=EngineSpec, description="Engine settings.")
    slo: SLOSpec = Field(default_factory=SLOSpec, description="SLO targets (live).")
    scheduler: SchedulerSpec = Field(
        default_factory=SchedulerSpec, description="Scheduler knobs (live)."
    )
    autoscaling: AutoscalingSpec = Field(
        default_factory=AutoscalingSpec, description="Autoscaling bounds and targets."
    )
    router: RouterSpec = Field(
        default_factory=RouterSpec, description="Router tier in front of the engines (live knobs)."
    )

    def desired_replicas(self) -> int:
        """What the Deployment runs: ``spec.replicas`` within the autoscaling bounds."""
        wanted = self.autoscaling.min_replicas if self.replicas is None else self.replicas
        return max(self.autoscaling.min_replicas, min(self.autoscaling.max_replicas, wanted))

    def router_knobs(self) -> RouterKnobs:
        """The live-knob document routers run: ``router`` plus the scheduler's predictor
        confidence (routers and engines estimate KV demand alike)."""
        r = self.router
        return RouterKnobs(
            placement=r.placement,
            admission=r.admission,
            queue_limit=r.queue_limit,
            queue_timeout_s=r.queue_timeout_s,
            cold_start_timeout_s=r.cold_start_timeout_s,
            predictor_confidence=self.scheduler.predictor_confidence,
        )

    def knobs(self) -> Knobs:
        """The live-knob document engines run: ``scheduler`` plus the SLO defaults."""
        s = self.scheduler
        return Knobs(
            policy=s.policy,
            reservation_ratio=s.reservation_ratio,
            predictor_confidence=s.predictor_confidence,
            chunk_min_tokens=s.chunk_min_tokens,
            chunk_max_tokens=s.chunk_max_tokens,
            preemption_mode=s.preemption_mode,
            slo_defaults=SLODefaults(
                slo_class=self.slo.slo_class,
                ttft_ms=self.slo.ttft_ms,
                tbt_ms=self.slo.tbt_ms,
                slo_classes=tuple(self.slo.slo_classes),
            ),
        )


# -------------------------------------------------------------------------------------- status

ConditionType = Literal["Available", "Progressing", "Degraded", "KnobsApplied"]
Activity = Literal["Active", "Idle", "Waking"]
EngineModeObserved = Literal["simulated", "vllm", "mixed", "unknown"]
"""``status.engineMode``: every answering engine pod says the same mode (``simulated``,
``vllm``), they disagree (``mixed``), or none says (``unknown``)."""


class Condition(_Model):
    """Kubernetes-style condition (metav1.Condition shape)."""

    type: ConditionType = Field(description="Condition type.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(max_length=1024, description="CamelCase reason for the status.")
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    last_transition_time: str = Field(
        json_schema_extra={"format": "date-time"},
        description="When the status last changed (RFC 3339).",
    )
    observed_generation: int = Field(
        default=0, ge=0, description="metadata.generation the condition was computed for."
    )


class PodKnobs(_Model):
    """Live-knob state of one engine pod."""

    name: str = Field(description="Pod name.")
    knobs_revision: int | None = Field(
        default=None,
        json_schema_extra={"format": "int64"},
        description="Knob revision the pod reported after the last push; unset if unknown.",
    )
    message: str = Field(
        default="", max_length=4096, description="Why the pod does not run the spec's knobs."
    )


class LastScale(_Model):
    """The autoscaler's most recent decision."""

    time: str = Field(json_schema_extra={"format": "date-time"}, description="When (RFC 3339).")
    from_replicas: int = Field(alias="from", ge=0, description="Replicas before.")
    to_replicas: int = Field(alias="to", ge=0, description="Replicas after.")
    reason: str = Field(max_length=256, description="CamelCase reason, e.g. ScaleUpSLOFastPath.")
    message: str = Field(default="", max_length=4096, description="Signals behind the decision.")


class LLMServiceStatus(_Model):
    """Observed state, written by the operator (and `lastScale`, sloAttainment, kvPressure,
    activity, lastRequestTime, lastColdStartSeconds, engineMode by the autoscaler)."""

    observed_generation: int = Field(
        default=0, ge=0, description="metadata.generation the operator last reconciled."
    )
    replicas: int = Field(default=0, ge=0, description="Engine pods that exist.")
    ready_replicas: int = Field(default=0, ge=0, description="Engine pods that are ready.")
    selector: str = Field(
        default="", description="Label selector of the engine pods (for the scale subresource)."
    )
    knobs_revision: int | None = Field(
        default=None,
        json_schema_extra={"format": "int64"},
        description="Revision of the knob document the spec asks for.",
    )
    router_knobs_revision: int | None = Field(
        default=None,
        json_schema_extra={"format": "int64"},
        description="Revision of the router knob document the spec asks for.",
    )
    pods: list[PodKnobs] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Knob revision applied on each ready pod: engines run `knobsRevision`, "
        "routers `routerKnobsRevision`.",
    )
    slo_attainment: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Measured share of requests meeting the SLO."
    )
    kv_pressure: float | None = Field(
        default=None, ge=0.0, description="Mean KV-cache demand over capacity across ready pods."
    )
    last_scale: LastScale | None = Field(default=None, description="Latest scaling decision.")
    routers: int = Field(default=0, ge=0, description="Router pods that exist.")
    ready_routers: int = Field(default=0, ge=0, description="Router pods that are ready.")
    endpoint: str = Field(
        default="",
        max_length=1024,
        description="URL clients send OpenAI requests to (the Service, in-cluster DNS).",
    )
    activity: Activity | None = Field(
        default=None,
        description="`Active`; `Idle` once scaled to zero for lack of traffic; `Waking` from "
        "a scale-up at zero until the first token is served.",
    )
    last_request_time: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When a router last saw a request arrive (RFC 3339); the idle clock.",
    )
    last_cold_start_seconds: float | None = Field(
        default=None,
        ge=0.0,
        description="Latest wake from zero: seconds from the scale-up to the first token served.",
    )
    engine_mode: EngineModeObserved | None = Field(
        default=None,
        description="What the ready engine pods say serves requests (their "
        "`sloserve_engine_info` metric), not what the spec asks: `simulated`, `vllm`, `mixed` "
        "(pods disagree) or `unknown` (an engine without that metric). Differs from "
        "`spec.engine.simulated` on the dev cluster, which runs every engine simulated "
        "(Event `EngineModeDiffers`). Kept while no pod answers; unset until the autoscaler "
        "(`autoscaling.enabled`) first reads the pods.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        description="Available, Progressing, Degraded and KnobsApplied.",
    )


NAME_PATTERN = "^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_NAME_LENGTH = 55
"""Children are named NAME, NAME-knobs, NAME-admin, NAME-router and NAME-engines (the engines'
headless Service); Services need DNS-1035 labels (63)."""


def _name_ok(obj: Any) -> bool:
    name = str(obj.metadata.get("name", ""))
    return not name or (
        len(name) <= MAX_NAME_LENGTH and re.fullmatch(NAME_PATTERN, name) is not None
    )


class LLMService(_Model):
    """An SLO-aware LLM service: engines, scheduler knobs and autoscaling in one object."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=f"self.metadata.name.matches('{NAME_PATTERN}') && "
            f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
            message="metadata.name must be a lowercase DNS-1035 label (letters, digits, '-', "
            f"starting with a letter) of at most {MAX_NAME_LENGTH} characters: it names the "
            "Service, ConfigMap and Secret",
            field_path="",
            check=_name_ok,
        ),
    )

    api_version: Literal["sloserve.io/v1alpha1"] = Field(
        default="sloserve.io/v1alpha1", description="sloserve.io/v1alpha1"
    )
    kind: Literal["LLMService"] = Field(default="LLMService", description="LLMService")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Object metadata.")
    spec: LLMServiceSpec = Field(description="Desired state.")
    status: LLMServiceStatus | None = Field(default=None, description="Observed state.")


PRINTER_COLUMNS: tuple[dict[str, Any], ...] = (
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Available")].status',
        "description": "Available condition.",
    },
    {
        "name": "Replicas",
        "type": "integer",
        "jsonPath": ".status.readyReplicas",
        "description": "Ready engine pods.",
    },
    {
        "name": "Routers",
        "type": "integer",
        "jsonPath": ".status.readyRouters",
        "description": "Ready router pods.",
    },
    {
        "name": "Activity",
        "type": "string",
        "jsonPath": ".status.activity",
        "description": "Active, Idle (scaled to zero) or Waking.",
    },
    {
        "name": "SLO",
        "type": "number",
        "jsonPath": ".status.sloAttainment",
        "description": "Measured SLO attainment.",
    },
    {
        "name": "KV-Pressure",
        "type": "number",
        "jsonPath": ".status.kvPressure",
        "description": "KV-cache demand over capacity.",
    },
    {
        "name": "Policy",
        "type": "string",
        "jsonPath": ".spec.scheduler.policy",
        "description": "Scheduling policy.",
    },
    {
        "name": "Engines",
        "type": "string",
        "jsonPath": ".status.engineMode",
        "description": "What the engine pods say they run: simulated, vllm, mixed or unknown.",
    },
    {
        "name": "Knobs",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="KnobsApplied")].status',
        "description": "All pods run the spec's knobs.",
        "priority": 1,
    },
    {
        "name": "Endpoint",
        "type": "string",
        "jsonPath": ".status.endpoint",
        "description": "URL clients send requests to.",
        "priority": 1,
    },
    {
        "name": "Last-Request",
        "type": "date",
        "jsonPath": ".status.lastRequestTime",
        "description": "Time since a router last saw a request.",
        "priority": 1,
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)
