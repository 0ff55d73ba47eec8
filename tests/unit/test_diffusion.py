"""Rectified-flow conventions against their closed forms."""

import pytest
import torch

from lightning_aapt.diffusion import (
    add_noise,
    euler_sample,
    euler_step,
    flow_matching_loss,
    noise_from_velocity,
    sample_timesteps,
    shift_time,
    timestep_schedule,
    velocity_target,
    x0_from_velocity,
)

pytestmark = pytest.mark.unit


def test_noising_and_parameterisation_round_trip():
    x0, noise, t = torch.randn(2, 3, 4, 2, 2), torch.randn(2, 3, 4, 2, 2), torch.rand(2, 3)
    x_t = add_noise(x0, noise, t)
    torch.testing.assert_close(x_t[1, 2], (1 - t[1, 2]) * x0[1, 2] + t[1, 2] * noise[1, 2])
    v = velocity_target(x0, noise)
    torch.testing.assert_close(x0_from_velocity(x_t, v, t), x0)
    torch.testing.assert_close(noise_from_velocity(x_t, v, t), noise)
    assert torch.equal(add_noise(x0, noise, torch.ones(2, 3)), noise)
    assert torch.equal(add_noise(x0, noise, torch.zeros(2, 3)), x0)


def test_time_shift_closed_form():
    t = torch.linspace(0, 1, 11)
    assert torch.equal(shift_time(t, 1.0), t)
    s = 24.0
    torch.testing.assert_close(shift_time(t, s), s * t / (1 + (s - 1) * t))
    assert shift_time(torch.tensor(0.0), s) == 0 and shift_time(torch.tensor(1.0), s) == 1
    assert (shift_time(t, s)[1:-1] > t[1:-1]).all()  # s > 1 moves mass to high noise
    with pytest.raises(ValueError, match="shift"):
        shift_time(t, 0.0)


def test_timesteps_per_clip_and_per_frame():
    gen = torch.Generator().manual_seed(0)
    clip = sample_timesteps(64, 5, per="clip", generator=gen)
    assert clip.shape == (64, 5) and (clip == clip[:, :1]).all()
    frame = sample_timesteps(64, 5, per="frame", distribution="logit_normal", shift=3.0, generator=gen)
    assert frame.shape == (64, 5) and not (frame == frame[:, :1]).all()
    assert ((frame > 0) & (frame < 1)).all()


def test_euler_is_exact_on_a_straight_flow():
    """With the true velocity (noise - x0, constant along the path), any K lands exactly on x0."""
    x0, noise = torch.randn(3, 4), torch.randn(3, 4)
    calls = []

    def velocity(x, t, i):
        calls.append(i)
        return noise - x0

    for k, shift in [(1, 1.0), (4, 3.0)]:
        calls.clear()
        torch.testing.assert_close(euler_sample(velocity, noise, timestep_schedule(k, shift)), x0)
        assert calls == list(range(k))


def test_schedule_endpoints():
    ts = timestep_schedule(4, shift=5.0)
    assert ts.shape == (5,) and ts[0] == 1 and ts[-1] == 0 and (ts[:-1] > ts[1:]).all()


def test_flow_matching_loss_is_per_frame_mse():
    x0, noise = torch.zeros(1, 2, 1, 1, 1), torch.ones(1, 2, 1, 1, 1)
    v = torch.tensor([1.0, 3.0]).reshape(1, 2, 1, 1, 1)
    torch.testing.assert_close(flow_matching_loss(v, x0, noise), torch.tensor([[0.0, 4.0]]))


def test_an_euler_step_with_the_true_velocity_lands_on_the_straight_path_at_per_frame_times():
    x0, noise = torch.randn(2, 3, 4, 2, 2), torch.randn(2, 3, 4, 2, 2)
    t, t_next = torch.rand(2, 3), torch.rand(2, 3)  # any times, one per frame, either direction
    stepped = euler_step(add_noise(x0, noise, t), velocity_target(x0, noise), t, t_next)
    torch.testing.assert_close(stepped, add_noise(x0, noise, t_next))
