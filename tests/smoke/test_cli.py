"""The command line runs end to end."""

import subprocess
import sys

import pytest

from lightning_aapt.errors import ConfigError
from tests.helpers_cli import EXPERIMENTS

pytestmark = pytest.mark.smoke


def test_stream_command_reports_time_per_frame():
    out = subprocess.run([sys.executable, "-m", "lightning_aapt", "stream", "--preset", "tiny", "--frames", "20",
                          "--latent_size", "[4,4]", "--warmup", "2"], capture_output=True, text=True, check=True)
    assert "ms/frame" in out.stdout and "20 frames" in out.stdout


def test_unknown_command_fails_with_usage():
    out = subprocess.run([sys.executable, "-m", "lightning_aapt", "nope"], capture_output=True, text=True)
    assert out.returncode == 2 and "usage: python -m lightning_aapt COMMAND" in out.stdout


def test_the_top_level_help_says_what_each_command_is_for_and_the_version_is_the_packages(capsys):
    """`--help` names every command under what it is for; `--version` prints the one version (the package's, which
    pyproject reads and CITATION.cff repeats); the license the metadata declares is the LICENSE file's."""
    import importlib.metadata
    import re

    import yaml

    from lightning_aapt import __version__
    from lightning_aapt.cli import COMMANDS, LIGHTNING_COMMANDS, main

    assert main(["--help"]) == 0
    usage = capsys.readouterr().out
    assert "composition root" not in usage
    for heading in ("Train", "Use a trained generator", "Data", "Measure and plan"):
        assert f"\n{heading}\n" in usage
    listed = set(re.findall(r"^    ([a-z]+)", usage, flags=re.M))
    assert listed >= set(COMMANDS) | {"fit"}, set(COMMANDS) - listed
    assert all(f"| {c}" in usage or f"{c} |" in usage for c in LIGHTNING_COMMANDS)
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"lightning_aapt {__version__}"
    assert importlib.metadata.version("lightning_aapt") == __version__
    root = EXPERIMENTS.parent
    assert yaml.safe_load((root / "CITATION.cff").read_text())["version"] == __version__
    assert "Apache License" in (root / "LICENSE").read_text().splitlines()[0]
    assert importlib.metadata.metadata("lightning_aapt")["License"] == "Apache-2.0"


def test_extra_commands_take_typed_flags_with_help_from_their_docstrings(tmp_path, capsys):
    from lightning_aapt.cli import main

    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    help_text = capsys.readouterr().out
    assert "Fréchet/kernel distance and long-horizon drift" in help_text and "drift streams: multiples" in help_text
    with pytest.raises(ConfigError, match=r"^--frames: Expected a <class 'int'>. Got value: many$"):
        main(["sample", "--ckpt", "x.ckpt", "--out", "x.gif", "--frames", "many"])
    out = tmp_path / "toy"
    assert main(["prepare", "toy-world", "--out", str(out), "--spec.train_clips", "2", "--spec.val_clips", "2",
                 "--spec.clip_frames", "4", "--spec.world.size", "16"]) == 0
    from lightning_aapt.world.dataset import spec_from_manifest

    spec = spec_from_manifest(out)
    assert (spec.train_clips, spec.clip_frames, spec.world.size) == (2, 4, 16)


def test_a_refused_config_value_is_named_by_its_key_not_dumped():
    out = subprocess.run([sys.executable, "-m", "lightning_aapt", "fit", "--config", str(EXPERIMENTS / "stage1.yaml"),
                          "--model.init_args.backbone.window_frames=0"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == ("error: model.init_args.backbone.window_frames must be >= 1 or None "
                                                   "(unbounded), got 0")
    assert "Namespace(" not in out.stderr and "Traceback" not in out.stderr


def test_gradient_clip_val_under_stage_3_is_refused_naming_its_own_clip():
    out = subprocess.run([sys.executable, "-m", "lightning_aapt", "fit", "--config", str(EXPERIMENTS / "stage3.yaml"),
                          "--trainer.gradient_clip_val=1.0", "--model.init_args.init_from=null",
                          "--model.init_args.discriminator.init_from=null"], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1] == (
        "error: trainer.gradient_clip_val=1.0: AdversarialPostTraining steps its optimisers itself and clips each "
        "network through model.init_args.grad_clip (now 1.0); remove trainer.gradient_clip_val (or set it to null)")
    assert "Traceback" not in out.stderr and "MisconfigurationException" not in out.stderr


def test_a_grouped_setting_set_to_null_on_the_command_line_keeps_the_groups_other_settings(capsys):
    """`--model.init_args.rollout.segment_frames=null` (and `--key null`) reach the parser as a mapping it merges
    (jsonargparse refuses the dotted null under a stage's class_path); the rollout's other settings stay the YAML's."""
    import yaml

    from lightning_aapt.cli import main
    from lightning_aapt.cli.lightning import nulls_as_mappings

    assert nulls_as_mappings(["--model.init_args.rollout.frames", "null", "--trainer.max_steps=3", "--a", "b"]) == [
        "--model.init_args.rollout={frames: null}", "--trainer.max_steps=3", "--a", "b"]
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(EXPERIMENTS / "stage3.yaml"), "--model.init_args.init_from=null",
              "--model.init_args.discriminator.init_from", "null", "--model.init_args.rollout.segment_frames=null",
              "--print_config"])
    model = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
    assert model["rollout"]["segment_frames"] is None and model["rollout"]["frames"] == 15
    assert model["discriminator"]["init_from"] is None and model["discriminator"]["updates_before_g"] == 100


@pytest.mark.parametrize(("args", "said"), [
    (["--model.init_args.emma_decay=0.9"], "model.init_args.emma_decay: AdversarialPostTraining has no setting "
                                          "'emma_decay'; did you mean model.init_args.ema_decay?"),
    (["--data.init_args.num_frame=9"], "data.init_args.num_frame: WebVideoDataModule has no setting 'num_frame'; "
                                       "did you mean data.init_args.num_frames?"),
])
def test_a_misspelled_stage_or_data_setting_is_named_with_what_was_meant(args, said):
    """A stage's settings include those it passes on to StageModule (`**stage`): all are offered."""
    from lightning_aapt.cli import main

    with pytest.raises(ConfigError) as refused:
        main(["fit", "--config", str(EXPERIMENTS / "stage3.yaml"), *args, "--print_config"])
    assert str(refused.value) == said
