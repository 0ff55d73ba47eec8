"""The toy world: procedural, controllable sprites that render their own ground truth."""

from lightning_aapt.world.scene import Episode, WorldConfig, caption, initial_state, scripted_actions, simulate

__all__ = ["Episode", "WorldConfig", "caption", "initial_state", "scripted_actions", "simulate"]
