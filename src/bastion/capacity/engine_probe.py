"""This machine as llama.cpp serves one GGUF on it: the engine timed on two slices of the
model's own file, extrapolated to all its blocks.

Why not the raw probe alone: on a few CPU cores llama.cpp reaches a third to two thirds of
the memory bandwidth and float32 arithmetic the raw probe measures, and how much depends on
the model (its quantization kernels, its matrices' widths, a fixed cost per block), so a
prediction from the raw figures was off by 1.5-3x (BENCHMARKS.md). A token's time, and the
memory the engine holds, are a fixed part (embedding, output over the vocabulary, working
buffers) plus a part per byte of the transformer blocks; two slices (blocks spread over the
model's depth, where quantization mixes differ; sized by slice_sizes) give both, in about a
minute for a 1.5B model. Each slice runs in a process of its own, so its memory is its own.
"""

from __future__ import annotations

import functools
import json
import math
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.errors import BadRequest

# Below about six blocks the engine's memory is not yet linear in them (a 2-block slice of
# Qwen2.5-0.5B grew by 2.6 bytes per block byte to 6 blocks, 1.1 from 6 to 12).
MIN_BLOCKS = 6
# A slice whose weights fit the last-level cache decodes faster per byte than the model
# (SmolLM2-135M: 6 blocks and its embedding, 41 MB, beside a 32 MB cache, ran 30% faster
# per block than the whole), so the smaller slice reads several caches' worth a token.
CACHE_MULTIPLE = 4
PROMPT_TOKENS = 512  # the planner's default prompt: attention's cost grows with it
ANSWER_TOKENS = 32
RUNS = 3  # the median counts, as when a model is measured whole
CONTEXT = 1024  # the probe's context: room for its prompt and answer


@dataclass(frozen=True)
class EngineSpeed:
    """The whole model on this machine, extrapolated from its slices."""

    decode_s_per_token: float  # one sequence, after a PROMPT_TOKENS prompt
    prefill_s_per_token: float
    resident_bytes: float  # weights as the engine holds them, its buffers, CONTEXT's cache
    threads: int
    slices: tuple[int, int]  # the blocks kept in each slice
    depth: int  # the model's blocks


@dataclass(frozen=True)
class _SliceTiming:
    block_bytes: int
    decode_s_per_token: float
    prefill_s_per_token: float
    resident_bytes: float


def engine_speed(path: Path, threads: int) -> EngineSpeed:
    """llama.cpp's speed and memory for the GGUF at `path` on `threads` cores (cached per
    file version)."""
    stat = path.stat()
    return _engine_speed(path.resolve(), stat.st_size, stat.st_mtime_ns, threads)


@functools.lru_cache(maxsize=16)
def _engine_speed(path: Path, size: int, mtime_ns: int, threads: int) -> EngineSpeed:
    from gguf import GGUFReader

    reader = GGUFReader(path)  # parsing the vocabulary takes seconds: once
    total = sum(int(t.n_bytes) for t in reader.tensors if t.name.startswith("blk."))
    other = sum(int(t.n_bytes) for t in reader.tensors) - total
    family = reader.fields["general.architecture"].contents()
    depth = int(reader.fields[f"{family}.block_count"].contents())
    sizes = slice_sizes(path.name, depth, total, other, _last_level_cache_bytes())
    with tempfile.TemporaryDirectory(prefix="bastion-probe-") as tmp:
        timings = []
        for blocks in sizes:
            piece = Path(tmp) / f"slice-{blocks}.gguf"
            kept = _write_slice(reader, path.name, piece, blocks)
            timings.append(_time_slice(piece, kept, threads))
            piece.unlink()
    small, large = timings

    def whole(field: str) -> float:
        per_byte = (getattr(large, field) - getattr(small, field)) / (
            large.block_bytes - small.block_bytes
        )
        fixed = getattr(small, field) - per_byte * small.block_bytes
        # A busy neighbour can slow the smaller slice past the larger: the whole model is
        # never cheaper than the larger slice.
        return float(max(fixed + per_byte * total, getattr(large, field)))

    return EngineSpeed(
        decode_s_per_token=whole("decode_s_per_token"),
        prefill_s_per_token=whole("prefill_s_per_token"),
        resident_bytes=whole("resident_bytes"),
        threads=threads,
        slices=sizes,
        depth=depth,
    )


def slice_sizes(
    name: str, depth: int, block_bytes: int, other_bytes: int, cache_bytes: int
) -> tuple[int, int]:
    """The blocks of the two slices: the smaller reads CACHE_MULTIPLE caches a token (its
    blocks and the embedding and output), at least MIN_BLOCKS and at most 40% of the
    model; the larger twice as many, at most 80%."""
    per_block = block_bytes / depth
    wanted = math.ceil((CACHE_MULTIPLE * cache_bytes - other_bytes) / per_block)
    small = min(max(MIN_BLOCKS, wanted), int(0.4 * depth))
    large = min(2 * small, int(0.8 * depth))
    if small < MIN_BLOCKS or large <= small:
        raise BadRequest(
            f"{name} has {depth} blocks, too few to extrapolate from slices; "
            "measure it whole (bastion sweep) instead"
        )
    return small, large


def _last_level_cache_bytes() -> int:
    """The largest CPU cache (Linux sysfs), else 32 MiB."""
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip()
        scale = {"K": 2**10, "M": 2**20}.get(text[-1:], 1)
        digits = text.rstrip("KM")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes, default=32 * 2**20)


def slice_gguf(source: Path, target: Path, blocks: int) -> int:
    """Write a copy of `source` keeping `blocks` of its transformer blocks, spread evenly
    over its depth and renumbered; the bytes of the blocks kept."""
    from gguf import GGUFReader

    return _write_slice(GGUFReader(source), source.name, target, blocks)


def _write_slice(reader: Any, name: str, target: Path, blocks: int) -> int:
    from gguf import GGUFValueType, GGUFWriter

    family = reader.fields["general.architecture"].contents()
    depth = int(reader.fields[f"{family}.block_count"].contents())
    if not 0 < blocks < depth:
        raise BadRequest(f"{name} has {depth} blocks: a slice keeps 1 to {depth - 1}")
    chosen = {int((i + 0.5) * depth / blocks): i for i in range(blocks)}
    writer = GGUFWriter(target, family)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue  # the writer adds these itself
        kind = field.types[0]
        value = blocks if key == f"{family}.block_count" else field.contents()
        writer.add_key_value(
            key, value, kind, sub_type=field.types[-1] if kind == GGUFValueType.ARRAY else None
        )
    kept = 0
    for tensor in reader.tensors:
        block = re.match(r"blk\.(\d+)\.(.*)", tensor.name)
        if block is None:
            writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
        elif int(block.group(1)) in chosen:
            renamed = f"blk.{chosen[int(block.group(1))]}.{block.group(2)}"
            writer.add_tensor(renamed, tensor.data, raw_dtype=tensor.tensor_type)
            kept += int(tensor.n_bytes)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return kept


def _time_slice(path: Path, block_bytes: int, threads: int) -> _SliceTiming:
    done = subprocess.run(
        [sys.executable, "-m", __name__, str(path), str(threads)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise BadRequest(
            f"llama.cpp could not run a slice of the model ({done.stderr.strip()[-300:]}); "
            "plan with the table's hardware instead of this-machine"
        )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return _SliceTiming(block_bytes, **found)


def measure_slice(path: Path, threads: int) -> dict[str, float]:
    """In a fresh process: load the slice, read a prompt, decode greedily; llama.cpp's own
    evaluation times (the median of RUNS) and the memory the process grew by."""
    import llama_cpp

    from bastion.observability import resident_memory_bytes

    before = resident_memory_bytes()
    llm = llama_cpp.Llama(
        model_path=str(path), n_ctx=CONTEXT, n_threads=threads, n_threads_batch=threads,
        verbose=False,
    )  # fmt: skip
    text = "the quarterly report lists orders, cases and contacts by region " * 120
    prompt = llm.tokenize(text.encode())[:PROMPT_TOKENS]
    decode, prefill = [], []
    for _ in range(RUNS):
        llm.reset()  # type: ignore[no-untyped-call]
        llama_cpp.llama_perf_context_reset(llm.ctx)
        llm.eval(prompt)
        for _ in range(ANSWER_TOKENS):
            llm.eval([llm.sample(temp=0.0)])
        perf = llama_cpp.llama_perf_context(llm.ctx)
        prefill.append(perf.t_p_eval_ms / 1000 / perf.n_p_eval)
        decode.append(perf.t_eval_ms / 1000 / perf.n_eval)
    return {
        "decode_s_per_token": statistics.median(decode),
        "prefill_s_per_token": statistics.median(prefill),
        "resident_bytes": float(resident_memory_bytes() - before),
    }


if __name__ == "__main__":  # one slice, in its own process (see _time_slice)
    print(json.dumps(measure_slice(Path(sys.argv[1]), int(sys.argv[2]))))
