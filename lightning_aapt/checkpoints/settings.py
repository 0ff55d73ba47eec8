"""What a checkpoint records, and how it is compared with what it is used with: the stage that wrote it, the
backbone's architecture, the stage settings, the latents it was trained on, and how its generator samples."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lightning_aapt.backbone import BackboneConfig
from lightning_aapt.checkpoints.reading import stage_of
from lightning_aapt.errors import CheckpointError


def check_stage(checkpoint: dict, stage: str, where: str) -> None:
    """Refuse a checkpoint another stage (class name `stage`) wrote, naming both."""
    recorded = stage_of(checkpoint)
    if recorded is not None and recorded != stage:
        raise CheckpointError(f"{where}: a {recorded} checkpoint, but the config's model.class_path is {stage}; give "
                              f"a {stage} checkpoint, the config of {recorded}, or start {stage} from this one with "
                              "model.init_args.init_from")


def backbone_differences(saved: dict, ours: BackboneConfig, where: str = "the checkpoint") -> str:
    """The architecture fields where a checkpoint's `backbone_config` and `ours` differ, as
    "dim: checkpoint 48 vs config 64, ..." ('' when they agree; run settings older checkpoints record are ignored)."""
    recorded = dataclasses.asdict(recorded_backbone(saved, where))
    differ = [f"{k}: checkpoint {recorded.get(k)!r} vs config {v!r}" for k, v in dataclasses.asdict(ours).items()
              if plain(recorded.get(k)) != plain(v)]
    return ", ".join(differ)


def check_backbone(checkpoint: dict, ours: BackboneConfig, where: str) -> None:
    """Refuse a checkpoint of another architecture, naming the fields that differ and both values."""
    differ = backbone_differences(checkpoint["backbone_config"], ours, where)
    if differ:
        raise CheckpointError(f"{where}: the checkpoint's backbone differs from model.init_args.backbone (with the "
                              f"data's widths): {differ}")


# How a stage runs, not what it trains: these may change when a run resumes.
RUN_SETTINGS = ("attention_backend", "parallel")


def settings_differences(recorded: dict, configured: dict, key: str = "model.init_args",
                         ignore: tuple[str, ...] = ()) -> list[str]:
    """The stage settings where a checkpoint's `hyper_parameters` and a config's `model.init_args` disagree, as
    "model.init_args.backbone.dim: checkpoint 48, config 64" (run settings, the data-linked `model_dims`, Lightning's
    own entries and `ignore` aside; a setting only one side knows is not compared)."""
    differ = []
    for name in sorted(set(recorded) & set(configured)):
        if name.startswith("_") or name in (*RUN_SETTINGS, "model_dims", *ignore):
            continue
        a, b = plain(recorded[name]), plain(configured[name])
        if isinstance(a, dict) and isinstance(b, dict):
            differ += settings_differences(a, b, f"{key}.{name}")
        elif a != b:
            differ.append(f"{key}.{name}: checkpoint {a!r}, config {b!r}")
    return differ


def plain(value):
    """Settings as plain data: dataclasses as dicts, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


# Run settings that checkpoints written before they left `BackboneConfig` still record with the architecture.
FORMER_RUN_SETTINGS = ("attention_backend", "max_cache_frames")


def recorded_backbone(saved: dict, where: str = "the checkpoint") -> BackboneConfig:
    """The architecture a checkpoint's `backbone_config` records; one this version cannot build is refused, naming
    `where`."""
    if not isinstance(saved, dict):
        raise CheckpointError(f"{where}: backbone_config must record the backbone's fields, got "
                              f"{type(saved).__name__}")
    known = {f.name for f in dataclasses.fields(BackboneConfig)}
    fields = {k: v for k, v in saved.items() if k not in FORMER_RUN_SETTINGS}
    if unknown := sorted(set(fields) - known):
        raise CheckpointError(f"{where}: backbone_config records fields this version does not know ({unknown}): "
                              "written by a newer lightning_aapt? Upgrade to read it")
    try:
        return BackboneConfig(**fields)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: backbone_config does not describe a backbone: {err}") from None


@dataclass(frozen=True)
class Sampling:
    """How a checkpoint's generator samples: what its stage recorded (`sample_steps`, `timesteps.shift`,
    `context_frames`) or `merge` copied beside the weights; these defaults where nothing is (a Wan transformer).

    Args:
        steps: Euler steps per frame (network evaluations per frame).
        shift: the shift of the time grid (`TimestepConfig.shift`).
        context_frames: real frames a stream starts from (fed through the cache).
    """

    steps: int = 1
    shift: float = 1.0
    context_frames: int = 2


def recorded_sampling(checkpoint: dict, where: str = "the checkpoint") -> Sampling:
    """The `Sampling` a checkpoint records: `merge`'s own entry, else its stage's settings; one that cannot be read
    is refused, naming `where`."""
    recorded = dict(checkpoint.get("hyper_parameters") or {})
    default = Sampling()
    try:
        if checkpoint.get("sampling") is not None:
            return Sampling(**checkpoint["sampling"])
        return Sampling(steps=int(recorded.get("sample_steps", default.steps)),
                        shift=float((recorded.get("timesteps") or {}).get("shift", default.shift)),
                        context_frames=int(recorded.get("context_frames", default.context_frames)))
    except (TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{where}: its sampler settings cannot be read ({err})") from None
