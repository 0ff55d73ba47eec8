"""Low-rank adapters (LoRA) of the trained backbone, through peft: the base weights stay frozen and only the adapters
(and the input projections a causal conversion adds) train; `merged_state` folds the adapters back into plain
weights without peft, so `init_from`, `eval`, `sample` and `merge` read a LoRA checkpoint like any other.

A wrapped linear layer `name` keeps its weights as `name.base_layer.{weight,bias}` and gains
`name.lora_A.default.weight` (r, in) and `name.lora_B.default.weight` (out, r, zero at the start), computing
base(x) + (alpha / r) * B A x; merged, its weight is W + (alpha / r) * B A.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor, nn

ADAPTER = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])\.default\.weight$")
BASE = re.compile(r"^(?P<module>.+)\.base_layer\.(?P<param>weight|bias)$")


@dataclass(frozen=True)
class LoraConfig:
    """Train low-rank adapters of the backbone instead of all its weights (`model.init_args.lora`).

    Args:
        rank: r, the rank of each adapter.
        alpha: the adapters' scale is alpha / r (peft's `lora_alpha`).
        targets: the linear layers that get adapters, by the end of their name (peft's `target_modules`); the
            default is every linear layer of every block: fused self-attention qkv and output, cross-attention q, kv
            and output, and the MLP.
        trained_fully: modules trained whole beside the adapters, by the end of their name: the recycled-frame and
            control input projections, which a causal conversion adds at zero (a frozen zero matrix with a
            rank-r adapter would cap what the new inputs can carry). Names that match nothing are ignored.
        dropout: dropout on the adapters' input (peft's `lora_dropout`).
    """

    rank: int = 16
    alpha: float = 16.0
    targets: tuple[str, ...] = ("self_attn.qkv", "self_attn.proj", "cross_attn.q", "cross_attn.kv",
                                "cross_attn.proj", "mlp.0", "mlp.2")
    trained_fully: tuple[str, ...] = ("recycled_embed", "control_embed")
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("targets", "trained_fully"):  # lists from YAML or a checkpoint: the same settings
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.rank < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise ValueError(f"model.init_args.lora needs rank >= 1, alpha > 0 and 0 <= dropout < 1; got rank="
                             f"{self.rank}, alpha={self.alpha}, dropout={self.dropout}")
        if not self.targets:
            raise ValueError("model.init_args.lora.targets is empty: name the linear layers that get adapters")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def named_like(name: str, suffix: str) -> bool:
    """peft's rule for `target_modules` given as names: the module's name is `suffix` or ends with `.suffix`."""
    return name == suffix or name.endswith("." + suffix)


def add_lora(model: nn.Module, cfg: LoraConfig) -> nn.Module:
    """Wrap `cfg.targets` of `model` (in place) with zero-initialised adapters; freeze everything else but
    `cfg.trained_fully`. Raises, naming them, when a target matches no linear layer."""
    try:
        from peft import LoraConfig as PeftLoraConfig
        from peft import inject_adapter_in_model
    except ImportError as err:
        raise ImportError("model.init_args.lora trains adapters through peft: pip install -e \".[lora]\"") from err
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    unmatched = [t for t in cfg.targets if not any(named_like(name, t) for name in linear)]
    if unmatched:
        known = sorted({name.split(".", 2)[-1] if name.startswith("blocks.") else name for name in linear})
        raise ValueError(f"model.init_args.lora.targets {unmatched} match no linear layer of the backbone; its linear "
                         f"layers end with: {known}")
    inject_adapter_in_model(PeftLoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                           target_modules=list(cfg.targets)), model)
    for name, p in model.named_parameters():
        module = name.rsplit(".", 1)[0]
        p.requires_grad_(ADAPTER.match(name) is not None or any(named_like(module, m) for m in cfg.trained_fully))
    return model


def is_lora_state(state: dict[str, Tensor]) -> bool:
    return any(ADAPTER.match(k) for k in state)


@torch.no_grad()
def merged_state(state: dict[str, Tensor], cfg: LoraConfig) -> dict[str, Tensor]:
    """A LoRA model's state dict with each adapter folded into its base weight (W + alpha/r * B A, computed in
    float32, stored in W's dtype): the plain backbone's keys. Raises when an adapter's pair is incomplete."""
    adapters: dict[str, dict[str, Tensor]] = {}
    merged = {}
    for key, value in state.items():
        if match := ADAPTER.match(key):
            adapters.setdefault(match["module"], {})[match["which"]] = value
        elif match := BASE.match(key):
            merged[f"{match['module']}.{match['param']}"] = value
        else:
            merged[key] = value
    for module, pair in adapters.items():
        weight = merged.get(f"{module}.weight")
        if set(pair) != {"A", "B"} or weight is None:
            raise ValueError(f"LoRA weights of {module} are incomplete: found {sorted(pair)} adapters and "
                             f"{'a' if weight is not None else 'no'} base weight")
        delta = pair["B"].float() @ pair["A"].float()  # (out, r) @ (r, in)
        merged[f"{module}.weight"] = (weight.float() + cfg.scale * delta).to(weight.dtype)
    return merged
