"""`LiveWorld`: the toy world stepped one action at a time, as a player drives it: the truth a live stream is
shown and scored beside (the same physics and rendering as `simulate`: frame f shows the state after action f)."""

from __future__ import annotations

import numpy as np
import torch

from lightning_aapt.world.scene import Episode, WorldConfig, caption, initial_state, render_layers, step


class LiveWorld:
    """One scene of the toy world, stepped live.

    Args:
        world: the world's parameters (a dataset's `ToyWorldSpec.world`).
    """

    def __init__(self, world: WorldConfig) -> None:
        self.world = world
        self.state = None
        self.layers = None  # the last frame's `Layers`

    def reset(self, scene: int, context_frames: int) -> tuple[torch.Tensor, np.ndarray, str]:
        """Start scene `scene` and play `context_frames` frames with the agent at rest: their video (K, 3, S, S)
        in [0, 1], their actions (K, 2) (zeros) and the scene's caption."""
        self.state = initial_state(scene, self.world)
        actions = np.zeros((context_frames, self.world.action_dim), dtype=np.float32)
        frames = np.stack([self.step(a)[0] for a in actions])  # (K, S, S, 3)
        video = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
        return video, actions, caption(self.state, self.world)

    def step(self, action) -> tuple[np.ndarray, np.ndarray]:
        """Apply `action` (2,): the new frame (S, S, 3) uint8 and the agent's true position (x, y) in pixels."""
        if self.state is None:
            raise RuntimeError("call LiveWorld.reset(scene, context_frames) first")
        step(self.state, np.asarray(action, dtype=np.float64), self.world)
        self.layers = render_layers(self.state, self.world)
        return self.layers.image(), self.state.pos[0].copy()

    def frame(self) -> Episode:
        """The last frame as a one-frame `Episode` with its layers: what the object metrics score it against."""
        if self.layers is None:
            raise RuntimeError("call LiveWorld.reset(scene, context_frames) first")
        s = self.state
        return Episode(self.layers.image()[None], s.pos[None, 0].copy(),
                       s.pos[None, 1:].copy(), caption(s, self.world), s.radius[1:].copy(), [self.layers])
