"""How much hardware a model needs for a traffic target, from first principles.

Decoding is bound by memory: each step reads every weight once for the whole batch, plus
each sequence's KV cache, so one step takes (weights + batch x cache) / bandwidth, unless
the batch's arithmetic (2 x parameters FLOPs a token) takes longer. Reading the prompt
(prefill) is bound by compute. Memory bounds the batch: what the weights leave, divided by
one sequence's KV cache at the traffic's prompt and answer lengths. A replica then serves
the largest batch whose request latency (prefill, then the answer's decode steps) meets
the p95 target; replicas = the target rate / one replica's rate. A model too large for one
device is split over 2, 4 or 8 (tensor parallel), which multiplies bandwidth, compute and
memory; the split needing the fewest devices in all is chosen.

Beside the weights and the cache, an engine holds working buffers: llama.cpp reserves the
logits and activations of a 512-token step (its compute buffer is 512 x (vocabulary + 3 x
hidden) float32 values, 0.3 GB for a 150k vocabulary); this machine's engine probe measures
what the engine holds instead (repacked copies of some quantized matrices included).

Simplifications, named so a reader can judge them: every request has the traffic's p95
prompt and answer lengths (so latencies are upper bounds), prefill does not overlap
decoding, attention's own arithmetic is left out beside the weights' (this machine's probe
measures it after a 512-token prompt), and devices in a split add up perfectly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from bastion.capacity.architecture import Architecture
from bastion.capacity.hardware import Hardware
from bastion.errors import BadRequest

HOURS_PER_MONTH = 730
MEMORY_UTILIZATION = 0.9  # vLLM's default share of device memory it plans with
RESERVED_GB = 1.0  # runtime, CUDA graphs, activations
SPLITS = (1, 2, 4, 8)  # devices per replica (tensor parallel)
STEP_TOKENS = 512  # the prompt tokens an engine reads in one step (llama.cpp's n_ubatch)


@dataclass(frozen=True)
class Traffic:
    prompt_tokens: int
    answer_tokens: int
    qps: float
    p95_ms: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.answer_tokens

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1 or self.answer_tokens < 1:
            raise BadRequest("prompt and answer lengths must be at least one token")
        # NaN passes a `<= 0` test, and infinity overflows the replica count: finite only
        if not (0 < self.qps < math.inf and 0 < self.p95_ms < math.inf):
            raise BadRequest("--qps and --p95-ms must be positive, finite numbers")


@dataclass(frozen=True)
class Estimate:
    name: str
    weights_gb: float
    kv_cache_gb_per_sequence: float
    engine_memory_gb: float  # the engine's buffers beside weights and cache, per replica
    devices_per_replica: int = 0  # 0: the model does not fit
    max_concurrent_sequences: int = 0
    decode_tokens_per_s: float = 0.0  # one sequence alone
    prefill_tokens_per_s: float = 0.0
    batch: int = 0  # sequences a replica serves at once within the latency target
    request_latency_ms: float | None = None  # at that batch (or alone, when none meets it)
    replica_requests_per_s: float = 0.0
    replicas: int | None = None  # None: the target cannot be met on this hardware
    monthly_cost: float | None = None
    # At full use: a replica busy at its batch, every device-hour paid for.
    cost_per_1k_requests: float | None = None
    cost_per_1m_tokens: float | None = None  # prompt and answer tokens together
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan(
    arch: Architecture,
    hardware: Hardware,
    traffic: Traffic,
    precision: str,
    kv_bytes_per_value: float = 2.0,
) -> Estimate:
    """The cheapest way to meet the target on `hardware`: of the splits the model fits
    (1, 2, 4 or 8 devices a replica), the one needing the fewest devices in all; a split
    with room for more sequences may need fewer replicas."""
    engine = engine_memory_bytes(arch, hardware)
    weights = arch.weight_bytes(precision)
    kv_per_token = arch.kv_bytes_per_token(kv_bytes_per_value)
    per_sequence = kv_per_token * (traffic.prompt_tokens + traffic.answer_tokens)
    fits = Estimate(
        hardware.name, round(weights / 1e9, 3), round(per_sequence / 1e9, 4), round(engine / 1e9, 3)
    )
    held = weights + engine  # what a replica holds before any sequence's cache
    splits = [n for n in SPLITS if _free_bytes(hardware, n) - held >= per_sequence]
    if not splits:
        return replace(fits, note=f"weights and one sequence do not fit {max(SPLITS)} devices")
    options = [_on(fits, arch, hardware, traffic, weights, held, kv_per_token, n) for n in splits]
    met = [o for o in options if o.replicas is not None]
    if not met:
        return options[-1]  # the fastest split, with why it is not enough
    return min(met, key=lambda o: (o.replicas or 0) * o.devices_per_replica)


def _on(
    fits: Estimate,
    arch: Architecture,
    hardware: Hardware,
    traffic: Traffic,
    weights: float,
    held: float,
    kv_per_token: float,
    devices: int,
) -> Estimate:
    """The estimate with `devices` per replica."""
    bandwidth = hardware.bandwidth_gb_s * 1e9 * hardware.bandwidth_efficiency * devices
    flops = hardware.tflops * 1e12 * hardware.compute_efficiency * devices
    prefill = flops / (2 * arch.parameters)
    # The cache a decoding sequence holds on average: its prompt and half its answer.
    mean_cache = kv_per_token * (traffic.prompt_tokens + traffic.answer_tokens / 2)

    def step_seconds(batch: int) -> float:
        reading = (weights + batch * mean_cache) / bandwidth
        return max(reading, batch * 2 * arch.parameters / flops)

    def latency_ms(batch: int) -> float:
        # The batch's prompts are read before its answers are decoded together.
        reading = batch * traffic.prompt_tokens / prefill
        return 1000 * (reading + traffic.answer_tokens * step_seconds(batch))

    per_sequence = kv_per_token * (traffic.prompt_tokens + traffic.answer_tokens)
    most = int((_free_bytes(hardware, devices) - held) // per_sequence)
    batch = _largest(lambda b: latency_ms(b) <= traffic.p95_ms, most)
    sized = replace(
        fits,
        devices_per_replica=devices,
        max_concurrent_sequences=most,
        decode_tokens_per_s=round(1 / step_seconds(1), 1),
        prefill_tokens_per_s=round(prefill, 1),
        request_latency_ms=round(latency_ms(max(batch, 1)), 1),
    )
    if not batch:
        return replace(sized, note=f"one request alone is over the {traffic.p95_ms:.0f} ms target")
    rate = batch / (latency_ms(batch) / 1000)
    replicas = math.ceil(traffic.qps / rate)
    memory_bound = (weights + batch * mean_cache) / bandwidth >= batch * 2 * arch.parameters / flops
    sized = replace(sized, batch=batch, replica_requests_per_s=round(rate, 3), replicas=replicas)
    if hardware.price_per_hour is not None:
        hourly = devices * hardware.price_per_hour  # one replica
        sized = replace(
            sized,
            monthly_cost=round(replicas * hourly * HOURS_PER_MONTH, 2),
            cost_per_1k_requests=round(1000 * hourly / (rate * 3600), 5),
            cost_per_1m_tokens=round(1e6 * hourly / (rate * 3600 * traffic.tokens), 5),
        )
    return replace(
        sized,
        note="decode bound by memory bandwidth" if memory_bound else "decode bound by compute",
    )


def engine_memory_bytes(arch: Architecture, hardware: Hardware) -> float:
    """What the engine holds beside weights and cache: measured by this machine's probe,
    else its working buffers for one step."""
    if hardware.engine_memory_gb is not None:
        return hardware.engine_memory_gb * 1e9
    return STEP_TOKENS * (arch.vocab + 3 * arch.hidden) * 4.0


def _free_bytes(hardware: Hardware, devices: int) -> float:
    usable = hardware.memory_gb * 1e9 * (MEMORY_UTILIZATION if hardware.kind == "gpu" else 1.0)
    return devices * (usable - RESERVED_GB * 1e9)


def _largest(ok: Any, most: int) -> int:
    """The largest batch in 1..most that `ok` accepts (latency grows with the batch)."""
    low, high = 0, most
    while low < high:
        middle = (low + high + 1) // 2
        if ok(middle):
            low = middle
        else:
            high = middle - 1
    return low
