"""The sizing planner: model shapes read from the shipped GGUF and from a Hugging Face
folder, the planner's arithmetic against hand-worked figures, traffic from a real audit
trail, this machine's probe, and `bastion plan` and `GET /v1/admin/plan` end to end."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from bastion.capacity.architecture import read_architecture
from bastion.capacity.engine_probe import engine_speed, measure_slice, slice_gguf, slice_sizes
from bastion.capacity.hardware import hardware_table, probe_this_machine, select
from bastion.capacity.planner import Traffic, plan
from bastion.capacity.traffic import observed_traffic
from bastion.cli import app
from bastion.config import ModelConfig
from bastion.errors import BadRequest
from bastion.models.backends import weights_path
from bastion.models.base import ChatMessage, GenerationParams
from bastion.models.embedded import embedded_gguf_path
from bastion.pipeline import ChatRequest
from bastion.platform import Platform
from conftest import ECHO_CONFIG, LiveServer, hf_shaped_folder, write_config

runner = CliRunner()
TABLE = {h.name: h for h in hardware_table()}
H100 = TABLE["nvidia-h100-sxm-80gb"]


def _llama_70b_folder(folder: Path) -> Path:
    return hf_shaped_folder(
        folder, "llama", layers=80, hidden=8192, heads=64, kv_heads=8, ffn=28672, vocab=128256,
        context=8192, tied=False,
    )  # fmt: skip


def test_the_embedded_gguf_is_read_for_its_shape() -> None:
    arch = read_architecture(embedded_gguf_path())
    assert (arch.family, arch.layers, arch.heads, arch.kv_heads, arch.head_dim) == (
        "llama", 30, 9, 3, 64,
    )  # fmt: skip
    assert arch.parameters == 134_515_008 and arch.stored_as == "GGUF Q4_1"
    assert 90e6 < arch.stored_bytes < 100e6  # 4.5 bits a weight, plus the f32 norms
    assert arch.kv_bytes_per_token() == 2 * 30 * 3 * 64 * 2
    assert arch.weight_bytes("bf16") == 2 * arch.parameters
    assert weights_path(ModelConfig(name="m", backend="llamacpp")) == embedded_gguf_path()


def test_a_hugging_face_folder_is_read_from_its_config_and_headers(tmp_path: Path) -> None:
    arch = read_architecture(_llama_70b_folder(tmp_path / "llama"))
    assert 70.5e9 < arch.parameters < 70.6e9  # Llama 3 70B: 70.55B
    assert arch.stored_as == "safetensors bf16" and arch.stored_bytes == 2 * arch.parameters
    assert arch.kv_bytes_per_token() == 2 * 80 * 8 * 128 * 2  # 320 KiB a token


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p, "not a .gguf file or a folder with config.json"),
        (lambda p: (p / "x.gguf").write_bytes(b"nope") and p / "x.gguf", "not a readable GGUF"),
        (lambda p: (p / "config.json").write_text("{}") and p, "no 'num_attention_heads'"),
    ],
)
def test_what_is_not_a_model_is_refused_with_what_to_give(
    tmp_path: Path, make: Any, says: str
) -> None:
    with pytest.raises(BadRequest, match=says):
        read_architecture(make(tmp_path))
    with pytest.raises(BadRequest, match="give --weights"):
        weights_path(ModelConfig(name="api", backend="openai", base_url="http://x/v1"))


def test_decode_speed_and_memory_match_the_hand_worked_figures() -> None:
    arch = read_architecture(embedded_gguf_path())
    traffic = Traffic(prompt_tokens=512, answer_tokens=256, qps=1, p95_ms=10_000)
    found = plan(arch, H100, traffic, "bf16")
    weights = 2 * arch.parameters
    cache = arch.kv_bytes_per_token() * (512 + 128)  # prompt and half the answer, on average
    bandwidth = 3350e9 * 0.75
    assert found.decode_tokens_per_s == pytest.approx(bandwidth / (weights + cache), rel=1e-3)
    assert found.prefill_tokens_per_s == pytest.approx(
        989e12 * 0.5 / (2 * arch.parameters), rel=1e-3
    )
    assert found.kv_cache_gb_per_sequence == pytest.approx(23040 * 768 / 1e9, abs=1e-4)
    buffers = 512 * (49152 + 3 * 576) * 4  # llama.cpp's compute buffer: 99.4 MiB, as it says
    assert found.engine_memory_gb == pytest.approx(buffers / 1e9, abs=1e-3)
    assert found.max_concurrent_sequences == int(
        (80e9 * 0.9 - 1e9 - weights - buffers) // (23040 * 768)
    )
    assert found.request_latency_ms is not None and found.request_latency_ms <= 10_000
    assert found.replicas == 1 and found.monthly_cost == pytest.approx(3.00 * 730)
    per_hour = found.replica_requests_per_s * 3600
    assert found.cost_per_1k_requests == pytest.approx(1000 * 3.00 / per_hour, rel=1e-3)
    assert found.cost_per_1m_tokens == pytest.approx(1e6 * 3.00 / (per_hour * 768), rel=1e-3)


def test_a_model_too_large_for_one_gpu_is_split_and_costed(tmp_path: Path) -> None:
    arch = read_architecture(_llama_70b_folder(tmp_path / "llama"))
    traffic = Traffic(prompt_tokens=1000, answer_tokens=300, qps=1, p95_ms=20_000)
    bf16 = plan(arch, H100, traffic, "bf16")
    # 141 GB fits two H100s with room for two sequences (five replicas of two); four hold
    # hundreds, and one replica of four serves the rate.
    assert bf16.weights_gb == pytest.approx(141.1, abs=0.1) and bf16.devices_per_replica == 4
    assert bf16.replicas == 1
    busy = plan(arch, H100, replace(traffic, qps=20), "bf16")
    assert (busy.devices_per_replica, busy.replicas) == (8, 1)  # fewer in all than 4 x 3
    int4 = plan(arch, H100, traffic, "int4")
    assert int4.devices_per_replica == 1  # 40 GB of weights fit one
    assert bf16.replicas is not None and bf16.monthly_cost is not None
    assert bf16.monthly_cost == pytest.approx(bf16.replicas * 4 * 3.00 * 730)
    assert "memory bandwidth" in bf16.note
    t4 = plan(arch, TABLE["nvidia-t4-16gb"], traffic, "bf16")
    assert t4.devices_per_replica == 0 and t4.replicas is None and "do not fit" in t4.note
    more = plan(arch, H100, replace(traffic, qps=200), "bf16")
    assert more.replicas is not None and more.replicas > busy.replicas
    hurried = plan(arch, TABLE["nvidia-l4-24gb"], replace(traffic, p95_ms=500), "int4")
    assert hurried.replicas is None and "over the 500 ms target" in hurried.note


def test_bad_targets_and_names_are_refused() -> None:
    with pytest.raises(BadRequest, match="positive"):
        Traffic(512, 256, qps=0, p95_ms=1000)
    with pytest.raises(BadRequest, match="no hardware named 'tpu'"):
        select(["tpu"], hardware_table())
    with pytest.raises(BadRequest, match="unknown precision 'fp2'"):
        read_architecture(embedded_gguf_path()).weight_bytes("fp2")


def test_this_machine_is_probed() -> None:
    here = probe_this_machine()
    assert here.kind == "cpu" and here.memory_gb > 0.5
    assert 0.5 < here.bandwidth_gb_s < 2000 and 0.001 < here.tflops < 100
    assert here.engine_memory_gb is None and "matmul" in here.source


def test_a_slice_keeps_blocks_spread_over_the_depth_and_runs(tmp_path: Path) -> None:
    whole = read_architecture(embedded_gguf_path())
    kept = slice_gguf(embedded_gguf_path(), tmp_path / "slice.gguf", 2)
    part = read_architecture(tmp_path / "slice.gguf")
    assert part.layers == 2 and part.vocab == whole.vocab == 49152
    blocks = whole.stored_bytes - part.stored_bytes + kept  # the model's blocks, all of them
    assert kept == pytest.approx(blocks * 2 / 30, rel=0.01)  # Q4_1 throughout: even blocks
    assert part.stored_bytes - kept == whole.stored_bytes - blocks  # embedding and output kept
    ran = measure_slice(tmp_path / "slice.gguf", threads=1)  # llama.cpp reads and decodes it
    assert 0 < ran["prefill_s_per_token"] < ran["decode_s_per_token"] < 1
    with pytest.raises(BadRequest, match="too few to extrapolate"):
        engine_speed(tmp_path / "slice.gguf", threads=1)
    with pytest.raises(BadRequest, match="a slice keeps 1 to 1"):
        slice_gguf(tmp_path / "slice.gguf", tmp_path / "again.gguf", 2)


@pytest.mark.parametrize(
    ("depth", "other_mb", "cache_mb", "sizes"),
    [
        (30, 32, 32, (12, 24)),  # SmolLM2-135M: 2.2 MB blocks, all of it fits 4 caches
        (24, 244, 32, (6, 12)),  # Qwen2.5-0.5B: its embedding alone reads 7 caches
        (30, 32, 8, (6, 12)),  # a small cache
        (80, 1000, 256, (6, 12)),  # a 70B model: slices stay a small part of it
    ],
)
def test_slices_read_several_caches_a_token_and_stay_a_part_of_the_model(
    depth: int, other_mb: int, cache_mb: int, sizes: tuple[int, int]
) -> None:
    block_mb = 66 if depth == 30 else 247 if depth == 24 else 50_000
    found = slice_sizes("m", depth, block_mb * 2**20, other_mb * 2**20, cache_mb * 2**20)
    assert found == sizes


def test_this_machine_with_a_gguf_is_llama_cpp_timed_on_its_slices() -> None:
    here = probe_this_machine(model=embedded_gguf_path())
    assert here.source.startswith("measured: llama.cpp")
    assert re.search(r"slices of \d+ and \d+ of its 30 blocks", here.source)
    # Plausible for any CPU (the raw probe is not a bound: a busy neighbour moves it);
    # the engine holds some memory beside the weights and cache, less than its weights.
    assert 0.2 < here.bandwidth_gb_s < 500 and 1e-4 < here.tflops < 100, here
    assert here.engine_memory_gb is not None and 0 <= here.engine_memory_gb < 0.5, here
    arch = read_architecture(embedded_gguf_path())
    found = plan(arch, here, Traffic(512, 32, qps=0.1, p95_ms=600_000), "stored")
    assert found.engine_memory_gb == here.engine_memory_gb  # measured, not the formula
    # The plan gives back, for the probe's own traffic, what llama.cpp was timed to do.
    speed = engine_speed(embedded_gguf_path(), len(os.sched_getaffinity(0)))  # cached
    assert found.prefill_tokens_per_s == pytest.approx(1 / speed.prefill_s_per_token, rel=0.01)
    assert found.decode_tokens_per_s == pytest.approx(1 / speed.decode_s_per_token, rel=0.01)


def test_traffic_is_read_from_the_audit_trail(home: Path) -> None:
    platform = Platform.open(home, write_config(home, ECHO_CONFIG))
    try:
        key = platform.access.create_key(tenant="acme", user="a", role="admin").secret
        for words in (3, 5, 40):
            text = " ".join(["word"] * words)
            request = ChatRequest([ChatMessage("user", text)], GenerationParams(), "echo", "chat")
            platform.pipeline.complete(platform.pipeline.prepare(request, key))
        seen = observed_traffic(platform.audit, "echo", since=_day_ago())
        with pytest.raises(BadRequest, match="no answered request to 'echo-premium'"):
            observed_traffic(platform.audit, "echo-premium", since=_day_ago())
    finally:
        platform.close()
    assert seen.requests == 3
    assert seen.prompt_tokens_p50 < seen.prompt_tokens_p95  # the 40-word prompt
    assert seen.answer_tokens_p95 >= 40
    assert round(seen.busiest_hour_qps * 3600) in (2, 3)  # 3, unless an hour turned meanwhile


def _day_ago() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(days=1)


def test_bastion_plan_prints_the_issue_json(home: Path) -> None:
    small = {
        "name": "small",
        "backend": "llamacpp",
        "price": {"input_per_1m": 0.5, "output_per_1m": 1.5},
    }
    prices = {"prices": {"nvidia-l4-24gb": 0.3, "nvidia-t4-16gb": 0.2}}
    models = [*ECHO_CONFIG["models"], small]
    write_config(home, {**ECHO_CONFIG, "models": models, "capacity": prices})
    result = runner.invoke(
        app,
        ["plan", "--model", "small", "--qps", "5", "--p95-ms", "4000", "--format", "json",
         "--hardware", "nvidia-l4-24gb,this-machine", "--price", "nvidia-l4-24gb=0.4"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["model"] == "small" and found["architecture"]["layers"] == 30
    l4, here = found["hardware"]
    for row in (l4, here):
        assert {
            "name", "decode_tokens_per_s", "prefill_tokens_per_s", "weights_gb",
            "kv_cache_gb_per_sequence", "max_concurrent_sequences", "replicas", "monthly_cost",
        } <= set(row)  # fmt: skip
    assert l4["spec"]["price_per_hour"] == 0.4 and l4["monthly_cost"] == pytest.approx(0.4 * 730)
    assert here["name"] == "this-machine" and here["weights_gb"] < 0.1  # the GGUF as stored
    assert found["priced_per_token"]["cost_per_1k_requests"] == pytest.approx(
        1000 * (512 * 0.5 + 256 * 1.5) / 1e6
    )
    t4 = runner.invoke(app, ["plan", "--model", "small", "--qps", "1", "--p95-ms", "9000",
                             "--hardware", "nvidia-t4-16gb", "--format", "json"])  # fmt: skip
    assert json.loads(t4.output)["hardware"][0]["spec"]["price_per_hour"] == 0.2  # configured
    table = runner.invoke(app, ["plan", "--model", "small", "--qps", "1", "--p95-ms", "2000"])
    assert table.exit_code == 0 and "nvidia-h100-sxm-80gb" in table.output
    both = runner.invoke(
        app, ["plan", "--model", "small", "--weights", "x", "--qps", "1", "--p95-ms", "9"]
    )
    assert both.exit_code != 0 and "one of them" in both.output


def test_the_plan_over_http_is_for_admins_and_reads_their_tenant(home: Path) -> None:
    models = [*ECHO_CONFIG["models"], {"name": "small", "backend": "llamacpp"}]
    platform = Platform.open(home, write_config(home, {**ECHO_CONFIG, "models": models}))
    admin = platform.access.create_key(tenant="acme", user="a", role="admin").secret
    user = platform.access.create_key(tenant="acme", user="u", role="user").secret
    query = {"model": "small", "qps": 2, "p95_ms": 5000, "hardware": "nvidia-l4-24gb"}
    try:
        with LiveServer(platform) as server:

            def get(key: str, **params: Any) -> httpx.Response:
                return httpx.get(
                    f"{server.url}/v1/admin/plan",
                    params={**query, **params},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=60,
                )

            found = get(admin)
            refused = get(user)
            unknown = get(admin, model="gpt-9")
            negative = get(admin, qps=-1)
            not_a_number = get(admin, qps="nan")  # was a 500 (an overflow), like inf
            garbled = get(admin, qps="fast")
            no_traffic = get(admin, since="2026-01-01")
    finally:
        platform.close()
    assert found.status_code == 200, found.text
    (row,) = found.json()["hardware"]
    assert row["name"] == "nvidia-l4-24gb" and row["precision"] == "bf16" and row["replicas"] == 1
    assert refused.status_code == 403 and "admins only" in refused.text
    assert unknown.status_code == 404
    assert negative.status_code == 400 and "positive" in negative.text
    assert not_a_number.status_code == 400 and "finite" in not_a_number.text
    assert garbled.status_code == 400
    assert no_traffic.status_code == 400 and "no answered request to 'small'" in no_traffic.text
