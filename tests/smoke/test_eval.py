"""`eval` on a checkpoint of every stage: the generator loaded as `play` and `sample` load it, the data from the
config's data section; no stage module, teacher or discriminator is built."""

import json

import pytest
import torch

from lightning_aapt.cli import main
from lightning_aapt.errors import CheckpointError, ConfigError

pytestmark = pytest.mark.smoke

SMALL = ["--num_clips", "4", "--horizon", "3", "--drift_clips", "3", "--window_frames", "4"]


def refuse(*_, **__):
    raise AssertionError("eval built a network it does not evaluate")


@pytest.mark.parametrize("stage", ["stage0", "stage1", "stage2", "stage3"])
def test_eval_reports_every_stage_without_building_a_stage_module(tiny_chain, tmp_path, monkeypatch, stage):
    from lightning_aapt.adversarial import CausalDiscriminator
    from lightning_aapt.stages import StageModule

    monkeypatch.setattr(CausalDiscriminator, "__init__", refuse)
    monkeypatch.setattr(StageModule, "__init__", refuse)
    config, ckpt = tiny_chain[stage]
    out = tmp_path / "report"
    assert main(["eval", "--ckpt", str(ckpt), "--config", str(config), "--out", str(out), *SMALL,
                 "--cache_dir", str(tmp_path / "c")]) == 0
    result = json.loads((out / "report.json").read_text())
    recorded = torch.load(ckpt, map_location="cpu", weights_only=True)
    hparams = recorded["hyper_parameters"]
    assert result["model"] == recorded["stage"] and result["global_step"] == recorded["global_step"]
    assert result["steps_per_frame"] == hparams["sample_steps"]  # the stage's own sampler
    assert all(v > 0 for v in result["fd"]["values"].values())
    assert "EMA weights" in result["fd"]["protocol"]["conditioning"]
    text = (out / "report.md").read_text()
    if stage == "stage0":  # bidirectional: whole clips, no stream to drift
        assert result["drift"] is None and "cannot stream" in text
        assert "sampled jointly" in result["fd"]["protocol"]["conditioning"]
        assert not (out / "drift_plot.png").exists()
    else:
        assert result["drift"]["starts"] == [2, 6, 10, 14] and "| last / first |" in text
        assert set(result["transfer"]) == {"objects", "agent"}
        assert (out / "drift_plot.png").stat().st_size > 0 and (out / "drift_stream.gif").stat().st_size > 0


def test_eval_of_a_merged_checkpoint_matches_its_stage_checkpoint(tiny_chain, tmp_path):
    config, ckpt = tiny_chain["stage1"]
    args = ["eval", "--ckpt", str(ckpt), "--config", str(config), "--out", str(tmp_path / "report"), *SMALL,
            "--cache_dir", str(tmp_path / "c")]
    assert main(args) == 0
    result = json.loads((tmp_path / "report" / "report.json").read_text())

    # A plain backbone checkpoint (`merge`, EMA weights, the stage's sampler recorded) evaluates to the same numbers.
    merged = tmp_path / "merged.ckpt"
    assert main(["merge", "--ckpt", str(ckpt), "--out", str(merged)]) == 0
    args[2], args[6] = str(merged), str(tmp_path / "report_merged")
    assert main(args) == 0
    again = json.loads((tmp_path / "report_merged" / "report.json").read_text())
    assert again["fd"]["values"] == result["fd"]["values"] and again["drift"] == result["drift"]
    assert again["steps_per_frame"] == result["steps_per_frame"] and again["global_step"] == result["global_step"]
    with pytest.raises(ConfigError, match="already holds a report: pass --overwrite true"):
        main(args)
    assert main([*args, "--overwrite", "true"]) == 0
    cache = next((tmp_path / "c").glob("fd_rand3d-*.pt"))  # a cache cut short: said, recomputed, rewritten
    cache.write_bytes(cache.read_bytes()[:100])
    with pytest.warns(UserWarning, match="real-feature cache .* cannot be used"):
        assert main([*args, "--overwrite", "true"]) == 0
    assert json.loads((tmp_path / "report_merged" / "report.json").read_text())["fd"] == again["fd"]
    assert torch.load(cache, weights_only=True).shape[0] == 4

    many = [*args[:5], "--out", str(tmp_path / "many"), "--num_clips", "40", *args[9:]]  # 16 validation clips
    with pytest.warns(UserWarning, match="asked for 40 clips .* but the validation data gave 16"):
        assert main(many) == 0
    assert json.loads((tmp_path / "many" / "report.json").read_text())["fd"]["protocol"]["clips"] == 16

    with pytest.raises(CheckpointError, match=r"--ckpt=.*no such file"):
        main(["eval", "--ckpt", str(tmp_path / "missing.ckpt"), "--config", str(config)])
