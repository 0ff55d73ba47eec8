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


def test_toy_fps_with_decode_is_reported_for_the_toy_preset(tmp_path):
    out = tmp_path / "s.json"
    assert main(["bench", "streaming", "--frames", "12", "--out", str(out)]) == 0
    s = json.loads(out.read_text())["streaming"]
    assert 0 < s["toy_fps_with_decode"] < s["fps_without_decode"]
