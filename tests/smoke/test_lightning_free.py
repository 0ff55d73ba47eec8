"""`play`, `sample`, `merge` and `eval`'s loading of a checkpoint import no Lightning: checked in a fresh interpreter
(Lightning is the training framework; streaming a trained generator needs only torch)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
import lightning_aapt.cli.play.command as play
from lightning_aapt.cli import main

ckpt, data, out = sys.argv[1:4]
assert main(["sample", "--ckpt", ckpt, "--data", data, "--out", out + "/s.gif", "--frames", "4"]) == 0
assert main(["merge", "--ckpt", ckpt, "--out", out + "/merged.ckpt"]) == 0
served = []
play.serve = lambda app, listener, url: served.append(url)  # everything up to the server's loop
assert main(["play", "--ckpt", out + "/merged.ckpt", "--data", data, "--port", "0"]) == 0 and served

# eval's loading path: the generator, how it samples, the evaluation and report code it runs
from lightning_aapt.checkpoints import load_generator
from lightning_aapt.evaluation import drift, generated_vs_real, report, transfer
from lightning_aapt.inference.clips import sample_clips
load_generator(ckpt)
frameworks = ("lightning", "pytorch_lightning", "lightning_fabric")  # not torchmetrics' lightning_utilities
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in frameworks)))
"""


def test_streaming_a_checkpoint_imports_no_lightning(tiny_chain, toy_data, tmp_path):
    ckpt = tiny_chain["stage1"][1]
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(ckpt), str(toy_data), str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert (tmp_path / "s.gif").stat().st_size > 0
