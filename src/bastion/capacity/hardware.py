"""The hardware a model may be served on: the GPU table shipped as data (hardware.yaml),
and this machine, measured by a short probe: memory bandwidth and arithmetic speed, or,
for a GGUF, what llama.cpp reaches with that model here (engine_probe.py)."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bastion.errors import BadRequest

TABLE = Path(__file__).with_name("hardware.yaml")
THIS_MACHINE = "this-machine"
PROBE_BYTES = 256 * 2**20  # larger than any CPU cache, so reads come from memory


@dataclass(frozen=True)
class Hardware:
    name: str
    kind: str  # gpu or cpu
    memory_gb: float  # per device
    bandwidth_gb_s: float  # memory bandwidth per device
    tflops: float  # dense 16-bit (GPU) or measured float32 (CPU) per device
    price_per_hour: float | None  # per device, in the table's currency
    # What a serving engine reaches of the peaks (measured figures are reached already).
    bandwidth_efficiency: float = 1.0
    compute_efficiency: float = 1.0
    source: str = ""
    # What the serving engine holds beside weights and cache, when measured (this machine
    # with a GGUF); None: the planner's estimate of its working buffers.
    engine_memory_gb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hardware_table(path: Path = TABLE) -> list[Hardware]:
    rows = yaml.safe_load(path.read_text(encoding="utf-8"))
    defaults = rows.get("defaults", {})
    return [Hardware(**{**defaults, **row}) for row in rows["hardware"]]


def select(
    names: list[str] | None, table: list[Hardware], model: Path | None = None
) -> list[Hardware]:
    """The named hardware (THIS_MACHINE probes this one, with llama.cpp serving `model`
    when it is a GGUF), or the whole table."""
    if not names:
        return table
    known = {h.name: h for h in table}
    chosen = []
    for name in names:
        if name == THIS_MACHINE:
            chosen.append(probe_this_machine(model=model))
        elif name in known:
            chosen.append(known[name])
        else:
            raise BadRequest(
                f"no hardware named '{name}'; use {THIS_MACHINE} or one of {', '.join(known)}"
            )
    return chosen


def probe_this_machine(price_per_hour: float | None = None, model: Path | None = None) -> Hardware:
    """This machine's memory bandwidth (every core reading its share of a large array) and
    float32 matrix-multiply speed, best of a few runs: about two seconds. With a GGUF
    `model`, the speeds llama.cpp reaches with it instead (and the memory it holds beside
    the weights), measured on slices of it: under a minute."""
    threads = len(os.sched_getaffinity(0))
    if model is not None and model.is_file() and model.suffix == ".gguf":
        return _engine_probe(model, threads, price_per_hour)
    data = np.ones(PROBE_BYTES // 8, dtype=np.float64)
    shares = np.array_split(data, threads)
    with ThreadPoolExecutor(threads) as pool:  # numpy releases the GIL while it sums
        best_read = min(_timed(lambda: list(pool.map(np.sum, shares))) for _ in range(5))
    n = 1024
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    best_matmul = min(_timed(lambda: a @ a) for _ in range(5))
    return Hardware(
        name=THIS_MACHINE,
        kind="cpu",
        memory_gb=round(_available_memory() / 1e9, 1),
        bandwidth_gb_s=round(data.nbytes / best_read / 1e9, 2),
        tflops=round(2 * n**3 / best_matmul / 1e12, 4),
        price_per_hour=price_per_hour,
        source=f"measured: {threads} cores, {PROBE_BYTES // 2**20} MiB read, {n}^3 matmul",
    )


def _engine_probe(model: Path, threads: int, price_per_hour: float | None) -> Hardware:
    """The speeds that, put through the planner's formulas, give what llama.cpp measured:
    bandwidth as the weights and cache read per decoded token (the cache at the probe's
    mean length while decoding), arithmetic as 2 x parameters per prompt token."""
    from bastion.capacity.architecture import read_architecture
    from bastion.capacity.engine_probe import (
        ANSWER_TOKENS,
        CONTEXT,
        PROMPT_TOKENS,
        engine_speed,
    )

    arch = read_architecture(model)
    speed = engine_speed(model, threads)
    cache = arch.kv_bytes_per_token() * CONTEXT
    read = arch.stored_bytes + arch.kv_bytes_per_token() * (PROMPT_TOKENS + ANSWER_TOKENS / 2)
    return Hardware(
        name=THIS_MACHINE,
        kind="cpu",
        memory_gb=round(_available_memory() / 1e9, 1),
        bandwidth_gb_s=round(read / speed.decode_s_per_token / 1e9, 2),
        tflops=round(2 * arch.parameters / speed.prefill_s_per_token / 1e12, 4),
        price_per_hour=price_per_hour,
        source=f"measured: llama.cpp on {threads} cores, {model.name} timed on slices of "
        f"{' and '.join(map(str, speed.slices))} of its {speed.depth} blocks",
        engine_memory_gb=round(max(speed.resident_bytes - arch.stored_bytes - cache, 0) / 1e9, 3),
    )


def _timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _available_memory() -> float:
    """Bytes of memory available to new work (MemAvailable), else all of it."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
