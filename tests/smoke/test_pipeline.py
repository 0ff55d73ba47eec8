"""The pipeline runs every stage from the shipped configs, chains them, reports, and resumes."""

import json

import pytest
import yaml

from lightning_aapt.cli import main
from lightning_aapt.errors import ConfigError, Refusal
from tests.helpers_cli import EXPERIMENTS, TINY_BACKBONE

pytestmark = pytest.mark.smoke


def test_pipeline_runs_all_stages_then_skips_them(toy_data, tmp_path, capsys):
    spec = yaml.safe_load((EXPERIMENTS / "pipeline.yaml").read_text())
    spec["experiment_dir"] = str(tmp_path / "exp")
    for stage in spec["stages"]:
        stage["config"] = str(EXPERIMENTS.parent / stage["config"])
    tiny = [f"--model.init_args.backbone.{k}={v}" for k, v in TINY_BACKBONE.items()]
    spec["args"] = [*tiny, f"--data.init_args.data_dir={toy_data}", "--data.init_args.num_frames=6",
                    "--data.init_args.batch_size=2", "--data.init_args.toy_world=null", "--trainer.max_steps=2",
                    "--trainer.val_check_interval=1", "--trainer.limit_val_batches=1",
                    "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    spec["stages"][3].setdefault("args", []).append("--model.init_args.rollout.segment_frames=null")  # 6-frame clips
    spec["report"].update(data_dir=str(toy_data), clip_frames=6, frames=12, clips=2)
    spec["report"]["streams"] += [{"stage": "stage1", "steps": 2},  # a stage at two step counts: two rows
                                  {"stage": "stage1", "steps": 2, "forcing": "teacher"}]  # without exposure bias
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(spec))
    assert main(["pipeline", "--config", str(config)]) == 0
    exp = tmp_path / "exp"
    for name in ("stage0", "stage1", "stage2", "stage3"):
        record = json.loads((exp / name / "DONE.json").read_text())
        assert record["global_step"] == 2 and (exp / name / "checkpoints" / "last.ckpt").is_file()
    summary = json.loads((exp / "summary.json").read_text())
    assert set(summary["streams"]) == {"stage1, 4 NFE", "stage1, 2 NFE", "stage1, 2 NFE, teacher-forced", "stage2",
                                       "stage3", "repeat", "perfect_physics", "truth"}
    taught = summary["streams"]["stage1, 2 NFE, teacher-forced"]
    assert taught["forcing"] == "teacher" and "ms_per_frame" not in taught and taught["starts"] == [2]
    curves = summary["streams"]["stage3"]["curves"]
    assert summary["streams"]["stage3"]["starts"] == [2]  # scored from the first frame after 2 context frames
    assert {"agent_error_px", "agent_lost", "action_following_px", "sharpness", "pixel_mse_truth",
            "fd_rand3d", "objects_kept", "object_mass", "object_position_px", "detail_kept",
            "spurious_detail"} <= set(curves)
    truth = summary["streams"]["truth"]["curves"]
    assert truth["pixel_mse_truth"] == [0.0] and truth["sharpness"] == [1.0] and truth["objects_kept"] == [1.0]
    assert summary["streams"]["truth"]["summary"]["median_lifetime"] == 10  # never dies in 10 generated frames
    transfer = summary["streams"]["stage3"]["transfer"]  # why objects fade: one step at each contrast a
    assert set(transfer) == {"objects", "agent"} and len(transfer["objects"]["a_out"]) == 6
    assert "| stage3 | " in (exp / "summary.md").read_text().split("Objects:")[1]
    assert summary["streams"]["repeat"]["curves"]["pixel_mse_truth"][0] > 0
    filled, end = summary["streams"]["stage3"]["cache_bytes"]
    assert filled == end > 0  # constant KV-cache memory once the window is full
    assert (exp / "stage3_stream.gif").stat().st_size > 0 and "| stage3 | 1 |" in (exp / "summary.md").read_text()
    assert {"python", "torch", "lightning", "numpy", "webdataset"} <= set(summary["versions"])
    assert f"torch {summary['versions']['torch']}" in (exp / "summary.md").read_text()  # what made the numbers
    from PIL import Image

    size = Image.open(exp / "stage3_stream.gif").size[1] // 4  # frame edge (the GIF is scaled 4x)
    sheet = Image.open(exp / "stage3_stream.png")  # generated above truth for each of the 2 scenes, 12 frames, x3
    assert sheet.size == (3 * (12 * (size + 1) + 1), 3 * (2 * 2 * (size + 1) + 1))
    assert "| stage3 | " in (exp / "summary.md").read_text().split("Drift curves")[1]
    capsys.readouterr()
    assert main(["pipeline", "--config", str(config)]) == 0  # everything finished: all skipped
    out = capsys.readouterr().out
    assert out.count("finished earlier") == 4
    (exp / "stage3" / "DONE.json").write_text("")  # an older version stopped while writing it in place
    assert main(["pipeline", "--config", str(config)]) == 0
    assert "holds no finished stage's record" in capsys.readouterr().out
    assert json.loads((exp / "stage3" / "DONE.json").read_text())["global_step"] == 2
    # a finished stage trained on another data folder (an earlier version's world) is not reported on this one
    saved = exp / "stage1" / "config.yaml"
    saved.write_text(saved.read_text().replace(f"data_dir: {toy_data}", "data_dir: data/toy16"))
    with pytest.raises(Refusal, match=r"stage1 finished on data_dir=data/toy16, but its config now trains on"):
        main(["pipeline", "--config", str(config)])


def test_sample_writes_a_video_next_to_the_truth(toy_data, tmp_path, capsys):
    from tests.helpers_cli import fit, tiny_config

    fit(tiny_config("stage1", tmp_path, toy_data, init_from=None))
    out = tmp_path / "stream.mp4"
    assert main(["sample", "--ckpt", str(tmp_path / "stage1/checkpoints/last.ckpt"), "--frames", "12",
                 "--out", str(out), "--data", str(toy_data), "--steps", "2"]) == 0
    printed = capsys.readouterr().out
    assert out.stat().st_size > 0 and "pixel MSE vs truth" in printed
    assert "memory grows with --frames" in printed.splitlines()[0]  # said before any work, as a long one would be


def test_a_config_without_a_report_summarises_stage_times_only(tmp_path):
    """A pipeline file that runs a subset of stages ahead (no `report:`) ends with their times, not with an error
    about a data directory it never named."""
    from lightning_aapt.cli.pipeline import long_stream_summary

    text = long_stream_summary(tmp_path, {"stages": []}, {"stage1": {"seconds": 12.0}})
    assert "stage1 12 s" in text and "no report.streams" in text
    assert json.loads((tmp_path / "summary.json").read_text())["streams"] == {}


def test_stage_flags_after_the_separator_are_forwarded_and_before_it_refused(tmp_path):
    """`pipeline --config X -- --trainer.max_steps=5`, as `--help` shows it, passes the flag to every stage (it reaches
    the first stage's trainer, which refuses this value by name); without the `--` it is refused, saying where it
    goes."""
    spec = {"experiment_dir": str(tmp_path / "exp"), "stages": [{"name": "stage0",
                                                                 "config": str(EXPERIMENTS / "stage0.yaml")}]}
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"trainer: .*max_steps.*-5"):
        main(["pipeline", "--config", str(config), "--", "--trainer.max_steps=-5"])
    with pytest.raises(ConfigError, match=r"--trainer.max_steps=5: pipeline forwards LightningCLI arguments after"):
        main(["pipeline", "--config", str(config), "--trainer.max_steps=5"])


@pytest.mark.parametrize("entry, message", [({"stage": "stage9", "steps": 1}, "stage 'stage9' is not one of"),
                                            ({"stage": "stage1", "steps": 0}, "steps must be a positive integer"),
                                            ({"stage": "stage1", "steps": 1, "forcing": "tf"}, "forcing must be"),
                                            ({"stage": "stage1", "steps": 1, "vid": "x.gif"}, "unknown keys")])
def test_a_bad_report_entry_is_refused_before_any_stage_trains(tmp_path, entry, message):
    spec = {"experiment_dir": str(tmp_path / "exp"), "stages": [{"name": "stage1",
                                                                 "config": str(EXPERIMENTS / "stage1.yaml")}],
            "report": {"streams": [entry]}}
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match=rf"pipeline.yaml: report.streams\[0\]: .*{message}"):
        main(["pipeline", "--config", str(config)])
    assert not (tmp_path / "exp").exists()
