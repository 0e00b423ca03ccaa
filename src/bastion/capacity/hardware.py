"""The hardware a model may be served on: the GPU table shipped as data (hardware.yaml),
and this machine, measured by a short probe (memory bandwidth and arithmetic speed)."""

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hardware_table(path: Path = TABLE) -> list[Hardware]:
    rows = yaml.safe_load(path.read_text(encoding="utf-8"))
    defaults = rows.get("defaults", {})
    return [Hardware(**{**defaults, **row}) for row in rows["hardware"]]


def select(names: list[str] | None, table: list[Hardware]) -> list[Hardware]:
    """The named hardware (THIS_MACHINE probes this one), or the whole table."""
    if not names:
        return table
    known = {h.name: h for h in table}
    chosen = []
    for name in names:
        if name == THIS_MACHINE:
            chosen.append(probe_this_machine())
        elif name in known:
            chosen.append(known[name])
        else:
            raise BadRequest(
                f"no hardware named '{name}'; use {THIS_MACHINE} or one of {', '.join(known)}"
            )
    return chosen


def probe_this_machine(price_per_hour: float | None = None) -> Hardware:
    """This machine's memory bandwidth (every core reading its share of a large array) and
    float32 matrix-multiply speed, best of a few runs: about two seconds."""
    threads = len(os.sched_getaffinity(0))
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
