"""Every shipped YAML parses (LightningCLI, omegaconf mode), without building the model."""

from pathlib import Path

import pytest
import yaml

from lightning_aapt.cli import main

pytestmark = pytest.mark.smoke

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
PIPELINES = [EXPERIMENTS / "pipeline.yaml", EXPERIMENTS / "reference.yaml"]
WORLDS = EXPERIMENTS / "worlds"  # toy-world specs the stage configs name (data.init_args.toy_world: a path)
CONFIGS = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p not in PIPELINES and p.parent != WORLDS)


def test_there_are_configs_for_each_stage_and_for_scale():
    names = {p.relative_to(EXPERIMENTS).as_posix() for p in CONFIGS}
    assert {"stage0.yaml", "stage1.yaml", "stage2.yaml", "stage3.yaml"} <= names
    assert any(n.startswith("scale/") for n in names)


def test_toy_world_specs_are_shared_files():
    """Each world is written once (experiments/worlds/), every config that names a world names one of those files,
    and the quick start's four stages name the same one: the 32-px world."""
    named = {}
    for config in CONFIGS:
        toy = yaml.safe_load(config.read_text()).get("data", {}).get("init_args", {}).get("toy_world")
        if toy is not None:
            assert isinstance(toy, str), f"{config}: data.init_args.toy_world should name a file in experiments/worlds"
            named[config.relative_to(EXPERIMENTS).as_posix()] = (config.parent / toy).resolve()
    assert set(named.values()) <= {p.resolve() for p in WORLDS.glob("*.yaml")}
    assert {named[f"stage{n}.yaml"] for n in range(4)} == {(WORLDS / "toy32.yaml").resolve()}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.relative_to(EXPERIMENTS).as_posix())
def test_last_checkpoint_holds_the_final_weights(config):
    """The training stream is infinite, so ModelCheckpoint writes last.ckpt only at its every_n_train_steps: the
    next stage (init_from .../last.ckpt) would start from stale weights unless that divides max_steps."""
    spec = yaml.safe_load(config.read_text())
    for callback in spec["trainer"].get("callbacks", []):
        if callback["class_path"].endswith("ModelCheckpoint") and callback["init_args"].get("save_last"):
            assert spec["trainer"]["max_steps"] % callback["init_args"]["every_n_train_steps"] == 0


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.relative_to(EXPERIMENTS).as_posix())
def test_config_parses(config, capsys):
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(config), "--print_config"])
    assert done.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "class_path: lightning_aapt.stages." in printed and "${" not in printed


def test_bad_config_key_names_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXPERIMENTS / "stage0.yaml").read_text().replace("ema_decay:", "ema_decayy:"))
    from lightning_aapt.cli import run

    assert run(["fit", "--config", str(bad), "--print_config"]) == 2
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert said == ["error: model.init_args.ema_decayy: BidirectionalPretraining has no setting 'ema_decayy'; did "
                    "you mean model.init_args.ema_decay?"], said


@pytest.mark.parametrize("pipeline", PIPELINES, ids=lambda p: p.name)
def test_pipeline_lists_existing_stage_configs_in_order(pipeline):
    from omegaconf import OmegaConf

    spec = OmegaConf.to_container(OmegaConf.load(pipeline), resolve=True)
    names = [s["name"] for s in spec["stages"]]
    main_line = ["stage0", "stage1", "stage2", "stage3"]  # the reference adds its ablation stages after these
    assert names[: len(main_line)] == main_line and (pipeline.name == "reference.yaml" or names == main_line)
    for stage in spec["stages"]:
        assert (EXPERIMENTS.parent / stage["config"]).is_file()
        for key in ("init_from", "discriminator_from"):
            assert stage.get(key) is None or names.index(stage[key]) < names.index(stage["name"])
    assert {s["stage"] for s in spec["report"]["streams"]} <= set(names)


def test_reference_ablation_stages_parse_with_their_arguments(capsys):
    """Each ablation of the reference pipeline is a shipped stage config plus arguments: they must parse."""
    from omegaconf import OmegaConf

    spec = OmegaConf.to_container(OmegaConf.load(EXPERIMENTS / "reference.yaml"), resolve=True)
    for stage in spec["stages"]:
        if not stage.get("args"):
            continue
        with pytest.raises(SystemExit) as done:
            main(["fit", "--config", str(EXPERIMENTS.parent / stage["config"]), *stage["args"], "--print_config"])
        assert done.value.code in (0, None), stage["name"]
        printed = capsys.readouterr().out
        for arg in stage["args"]:
            key, value = arg.removeprefix("--").split("=")
            assert f"{key.split('.')[-1]}: {value}" in printed, (stage["name"], arg)


def test_scale_configs_shard_every_stage_and_the_sbatch_example_is_valid(capsys):
    import subprocess

    for stage in range(4):
        text = (EXPERIMENTS / "scale" / f"stage{stage}_aapt8b.yaml").read_text()
        assert "ModelParallelStrategy" in text and "num_nodes: 32" in text, stage
    script = EXPERIMENTS / "scale" / "slurm_stage1_aapt8b.sbatch"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "#SBATCH --signal=USR1@90" in script.read_text() and "srun " in script.read_text()
    assert main(["plan", "--config", str(EXPERIMENTS / "scale" / "stage1_aapt8b.yaml")]) == 0
    printed = capsys.readouterr().out
    assert "| parameters | 8.049 B |" in printed and "fits" in printed and "gpus=256" in printed
