"""`bench all --quick true` runs every suite and writes the promised JSON keys with sane values."""

import json

import pytest

from lightning_aapt.cli import main

pytestmark = pytest.mark.smoke


def test_bench_all_writes_its_figures(toy_data, tmp_path, capsys):
    out = tmp_path / "results.json"
    assert main(["bench", "all", "--quick", "true", "--preset", "tiny", "--latent_size", "[8,8]", "--frames",
                 "20", "--data_dir", str(toy_data), "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert isinstance(r["machine"], str) and "threads" in r["machine"]
    s = r["streaming"]
    for key in ("speedup_vs_no_cache", "speedup_vs_4_steps", "cost_ratio_frame1000_vs_frame40"):
        assert isinstance(s[key], float) and s[key] > 0, key
    assert 0 < r["efficiency"]["mfu"] <= 1
    assert r["training"]["stage1_frames_per_second"] > 0 and r["training"]["stage3_frames_per_second"] > 0
    assert r["data"]["samples_per_second"]["0"] > 0
    assert 30e12 < r["projection"]["flops_per_latent_frame"] < 60e12
    printed = capsys.readouterr().out
    assert "## streaming" in printed and "python -m lightning_aapt bench all" in printed


def test_streaming_reports_every_method_from_interleaved_samples(tmp_path):
    out = tmp_path / "s.json"
    assert main(["bench", "streaming", "--frames", "12", "--window", "4", "--rounds", "3", "--batches", "[1,2]",
                 "--out", str(out)]) == 0
    s = json.loads(out.read_text())["streaming"]
    assert set(s["methods"]) == {"aapt", "no_cache", "four_steps", "chunk_bidirectional", "aapt_overlapped",
                                 "aapt_batch2"}
    for key, m in s["methods"].items():
        assert len(m["round_call_seconds"]) == 3 and len(m["ttff_seconds"]) == 5, key  # every sample kept
        assert len(m["call_seconds"]) >= 3 and len(m["call_seconds"]) == len(m["decode_seconds_per_frame"]), key
        assert 0 < m["step_p50"] <= m["step_p99"], key
        assert m["ttff_p50"] > 0 and (m["peak_memory_bytes"] is None or m["peak_memory_bytes"] >= 0), key
        if key != "aapt_overlapped":  # its calls include the decode
            assert 0 < m["fps_with_decode"] < m["fps_without_decode"], key  # the toy preset has its codec
    chunk = s["methods"]["chunk_bidirectional"]
    assert chunk["frames_per_call"] == 4 and chunk["ttff_p50"] > chunk["step_p50"]  # the first frame waits
    assert len(s["long_stream_seconds"]) == len(s["young_stream_seconds"]) == 12
    assert s["tokens_per_frame"] == 16
    assert all(m["peak_memory_of"] == "process" for m in s["methods"].values())  # a fresh process each on the CPU
    assert s["methods"]["aapt_batch2"]["peak_memory_bytes"] > 100 * 2**20  # torch itself is in a process's RSS
