"""Rectified-flow diffusion as pure functions: noising, parameterisation, time shift, timesteps, samplers."""

from lightning_aapt.diffusion.flow import (
    add_noise,
    euler_step,
    flow_matching_loss,
    noise_from_velocity,
    sample_timesteps,
    shift_time,
    velocity_target,
    x0_from_velocity,
)
from lightning_aapt.diffusion.samplers import euler_sample, frames_velocity, timestep_schedule

__all__ = ["add_noise", "euler_sample", "euler_step", "flow_matching_loss", "frames_velocity", "noise_from_velocity",
           "sample_timesteps", "shift_time", "timestep_schedule", "velocity_target", "x0_from_velocity"]
