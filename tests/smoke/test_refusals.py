"""Every command answers a bad value with one `error:` line naming it, and exit status 2 (`cli.run`): no
traceback, no usage text. One case per command; `test_bad_input.py` holds the other cases."""

from pathlib import Path

import pytest

from lightning_aapt.cli import COMMANDS, run
from lightning_aapt.cli.lightning import LIGHTNING_COMMANDS

pytestmark = pytest.mark.smoke

STAGE1 = str(Path(__file__).resolve().parents[2] / "experiments" / "stage1.yaml")

CASES = {
    "fit": (f"--config {STAGE1} --model.init_args.backbone.num_head=8", "did you mean model.init_args.backbone.num_"),
    "validate": (f"--config {STAGE1} --trainer.max_steps=abc", "trainer.max_steps"),
    "test": ("--config {tmp}/missing.yaml", "--config"),
    "predict": (f"--config {STAGE1} --data.init_args.num_frames=zero", "data.init_args.num_frames"),
    "bench": ("streaming --frames 0", "--frames 0: must be >= 1"),
    "eval": (f"--ckpt {{tmp}}/missing.ckpt --config {STAGE1}", "--ckpt="),
    "merge": ("--ckpt {tmp}/missing.ckpt --out {tmp}/m.ckpt", "--ckpt="),
    "pipeline": ("--config {tmp}/missing.yaml", "--config"),
    "plan": (f"--config {STAGE1} --frames 0", "--frames 0: must be >= 1"),
    "play": ("--ckpt {tmp}/missing.ckpt --port 99999", "--port 99999"),
    "prepare": ("toy-world --out {tmp}/toy --spec.train_clips -1", "train_clips"),
    "sample": ("--ckpt {tmp}/missing.ckpt --out {tmp}/s.gif --scale 0", "--scale 0: must be >= 1"),
    "stream": ("--preset nope", "--preset 'nope'"),
    "sweep": (f"--config {STAGE1} --out {{tmp}}/sweep --grid nope", "--grid"),
}


def test_every_command_has_a_case():
    assert set(CASES) == set(COMMANDS) | set(LIGHTNING_COMMANDS)


@pytest.mark.parametrize("command", sorted(CASES))
def test_a_bad_value_is_one_error_line_and_status_2(command, tmp_path, capsys):
    flags, words = CASES[command]
    assert run([command, *flags.format(tmp=tmp_path).split()]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], err
    assert "Traceback" not in out + err and "usage:" not in out + err
