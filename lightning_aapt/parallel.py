"""Parallelism and memory switches, applied from outside the model (docs/architecture.md §1: model code is pure).

`parallelize(modules, mesh, cfg)` is called from `StageModule.configure_model`: per block, activation
checkpointing, then `torch.compile`, then FSDP2 `fully_shard` when Lightning's `ModelParallelStrategy` gives a
device mesh (the torchtitan order). Every module passed is sharded block by block and then at its root, so the
parameters outside the blocks (embeddings, heads) are gathered by the root's forward. Under DDP or one device
there is no mesh: only checkpointing and compilation apply.

- Mixed precision (`precision: bf16`): FSDP2 keeps the sharded fp32 master weights and optimizer state, gathers
  bf16 copies for compute and reduces gradients in fp32. Leave the trainer's `precision` at 32-true with it.
- EMA: the EMA copy is sharded with the same mesh, so its update is a `lerp_` of local shards (DTensors), never
  a gathered full model.
- Checkpoints: `ModelParallelStrategy(save_distributed_checkpoint=True)` writes one shard per rank (a folder);
  `False` assembles one file on rank 0. `init_from` and `eval` read both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclass(frozen=True)
class ParallelConfig:
    """How the stage's networks are sharded and made to fit.

    Args:
        precision: "fp32" or "bf16" (FSDP2 mixed precision: bf16 compute, fp32 master weights and reduction).
            Only with ModelParallelStrategy; under DDP use the trainer's `precision: bf16-mixed` instead.
        activation_checkpointing: recompute each block's activations in the backward pass (memory for compute).
        compile: `torch.compile` each block (after checkpointing, before sharding).
        reshard_after_forward: free gathered parameters after each block's forward (ZeRO-3); False keeps them
            until the backward (ZeRO-2: more memory, less communication).
    """

    precision: Literal["fp32", "bf16"] = "fp32"
    activation_checkpointing: bool = False
    compile: bool = False
    reshard_after_forward: bool = True


def checkpoint_block(block: nn.Module) -> None:
    """Recompute `block`'s forward in backward; parameter names stay unchanged (checkpoints still load)."""
    forward = block.forward

    def checkpointed(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    block.forward = checkpointed


def blocks_of(module: nn.Module) -> list[nn.Module]:
    """The transformer blocks of a backbone or of a module holding one (the discriminator)."""
    return [m for m in module.modules() if type(m).__name__ == "Block"]


def parallelize(modules: list[nn.Module], mesh, cfg: ParallelConfig) -> None:
    """Apply `cfg` to each module in place; `mesh` (a 1-D data-parallel DeviceMesh) or None (no sharding)."""
    if mesh is None and cfg.precision != "fp32":
        raise ValueError("model.parallel.precision=bf16 is FSDP2 mixed precision and needs "
                         "trainer.strategy=ModelParallelStrategy; with DDP or one device set "
                         "trainer.precision=bf16-mixed instead")
    for module in modules:
        for block in blocks_of(module):
            if cfg.activation_checkpointing:
                checkpoint_block(block)
            if cfg.compile:
                block.compile()
    if mesh is None:
        return
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if "data_parallel" in (mesh.mesh_dim_names or ()):
        if "tensor_parallel" in mesh.mesh_dim_names and mesh["tensor_parallel"].size() > 1:
            raise ValueError("lightning_aapt shards with FSDP only: set ModelParallelStrategy(data_parallel_size="
                             "<world size>, tensor_parallel_size=1)")
        mesh = mesh["data_parallel"]
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if cfg.precision == "bf16" else None,
                                  reduce_dtype=torch.float32)
    for module in modules:
        for block in blocks_of(module):
            fully_shard(block, mesh=mesh, mp_policy=policy, reshard_after_forward=cfg.reshard_after_forward)
        fully_shard(module, mesh=mesh, mp_policy=policy, reshard_after_forward=cfg.reshard_after_forward)
