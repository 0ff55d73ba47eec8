"""`sweep`: a 2x2 grid runs here as 4 run directories with a summary; the sbatch script is valid bash."""

import csv
import subprocess

import pytest

from lightning_aapt.cli import main
from lightning_aapt.errors import ConfigError
from tests.helpers_cli import tiny_config

pytestmark = pytest.mark.smoke


def test_local_grid_gives_four_runs_and_a_summary(toy_data, tmp_path):
    config = tiny_config("stage1", tmp_path, toy_data, steps=2, init_from=None)
    out = tmp_path / "sweep"
    assert main(["sweep", "--config", str(config), "--grid", "model.init_args.optimizer.lr=[1e-4,3e-4]",
                 "--grid", "model.init_args.ema_decay=[0.9,0.99]", "--out", str(out), "--local", "true"]) == 0
    runs = sorted(p.name for p in out.glob("trial_*"))
    assert runs == ["trial_000", "trial_001", "trial_002", "trial_003"]
    assert all((out / r / "checkpoints" / "last.ckpt").is_file() for r in runs)
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["trial"] for r in rows] == runs and all(r["status"] == "done" for r in rows)
    assert {r["model.init_args.optimizer.lr"] for r in rows} == {"0.0001", "0.0003"}
    assert all(float(r["val/loss"]) > 0 for r in rows)
    assert "| trial_003 |" in (out / "summary.md").read_text()
    assert main(["sweep", "summary", "--dir", str(out)]) == 0


def test_sbatch_script_is_valid_and_complete(tmp_path):
    config = tmp_path / "x.yaml"
    config.write_text("model: {}\n")
    out = tmp_path / "slurm"
    assert main(["sweep", "--config", str(config), "--grid", "model.init_args.optimizer.lr=[1e-4,3e-4,1e-3]",
                 "--out", str(out), "--nodes", "2", "--gpus", "8", "--time", "12:00:00", "--partition", "gpu",
                 "--max_parallel", "2"]) == 0
    script = (out / "sweep.sbatch").read_text()
    assert subprocess.run(["bash", "-n", str(out / "sweep.sbatch")]).returncode == 0
    for directive in ("--array=0-2%2", "--nodes=2", "--ntasks-per-node=8", "--gpus-per-node=8", "--time=12:00:00",
                      "--signal=USR1@90", "--requeue", "--partition=gpu"):
        assert f"#SBATCH {directive}" in script, directive
    assert "srun " in script and "--trainer.num_nodes=2" in script and "trial_002" in script
    spaced = tmp_path / "my sweeps" / "lr test"  # sbatch splits a directive at whitespace outside quotes
    assert main(["sweep", "--config", str(config), "--grid", "model.init_args.optimizer.lr=[1e-4]", "--out",
                 str(spaced), "--name", "lr test"]) == 0
    script = (spaced / "sweep.sbatch").read_text()
    assert "#SBATCH --job-name='lr test'" in script
    assert f"#SBATCH --output='{spaced}/slurm-%A_%a.out'" in script
    with pytest.raises(ValueError, match="KEY=\\[v1,v2"):
        main(["sweep", "--config", str(config), "--grid", "lr=3", "--out", str(out)])
    # another sweep into the same --out would replace these trials: refused, trials.json as it was
    before = (out / "trials.json").read_text()
    with pytest.raises(ConfigError, match=r"holds another sweep .* its trials would be replaced"):
        main(["sweep", "--config", str(config), "--grid", "model.init_args.optimizer.lr=[1e-2]", "--out", str(out)])
    assert (out / "trials.json").read_text() == before
