"""The toy world: deterministic, physical, controllable, and able to re-render its ground truth."""

import numpy as np
import pytest

from lightning_aapt.world import WorldConfig, initial_state, scripted_actions, simulate

pytestmark = pytest.mark.unit


def test_simulation_is_deterministic_from_the_seed():
    actions = scripted_actions(3, 20)
    a, b = simulate(11, actions), simulate(11, actions)
    assert np.array_equal(a.frames, b.frames) and a.caption == b.caption
    assert not np.array_equal(simulate(12, actions).frames, a.frames)


def test_agent_follows_the_actions():
    frames = 12
    right = simulate(5, np.tile([[1.0, 0.0]], (frames, 1)).astype(np.float32))
    left = simulate(5, np.tile([[-1.0, 0.0]], (frames, 1)).astype(np.float32))
    down = simulate(5, np.tile([[0.0, 1.0]], (frames, 1)).astype(np.float32))
    start = initial_state(5, WorldConfig()).pos[0]
    assert right.agent_pos[2, 0] > start[0] > left.agent_pos[2, 0]  # early, before any wall bounce
    assert down.agent_pos[2, 1] > start[1]
    assert not np.array_equal(right.frames[3], left.frames[3])  # and it shows in the pixels
    rest = simulate(5, np.zeros((frames, 2), np.float32))
    assert np.allclose(rest.agent_pos, start)  # no action, no motion: the agent passes over sprites


def test_the_agents_path_is_the_actions_alone_unless_it_collides():
    """Redrawing the sprites' motion never moves the agent, unless it collides with them."""
    actions = scripted_actions(4, 60)
    for seed in range(10):
        assert np.array_equal(simulate(seed, actions).agent_pos, simulate(seed, actions, redraw_after=1).agent_pos)
    colliding = WorldConfig(agent_collides=True)
    assert any(not np.allclose(simulate(seed, actions, colliding).agent_pos,
                               simulate(seed, actions, colliding, redraw_after=1).agent_pos) for seed in range(10))


def test_bodies_stay_inside_the_frame():
    cfg = WorldConfig()
    for seed in range(20):
        ep = simulate(seed, scripted_actions(seed, 60), cfg)
        assert (ep.agent_pos >= 0).all() and (ep.agent_pos <= cfg.size).all()
        assert (ep.sprite_pos >= 0).all() and (ep.sprite_pos <= cfg.size).all()


def test_sprites_move_and_collide():
    moved = [np.abs(np.diff(simulate(s, np.zeros((30, 2), np.float32)).sprite_pos, axis=0)).sum() for s in range(5)]
    assert min(moved) > 1.0


def test_caption_names_the_sprites():
    state = initial_state(2, WorldConfig())
    ep = simulate(2, np.zeros((1, 2), np.float32))
    for colour, shape in zip(state.colour[1:], state.shape[1:], strict=True):
        assert f"{colour} {shape}" in ep.caption


def test_scripted_policy_persists_and_stays_in_range():
    actions = scripted_actions(0, 400, persistence=0.9)
    assert actions.shape == (400, 2) and actions.dtype == np.float32 and np.abs(actions).max() <= 1
    changes = (np.abs(np.diff(actions, axis=0)).sum(1) > 0).mean()
    assert 0.02 < changes < 0.25  # about 1 - persistence


def test_bad_actions_shape_is_reported():
    with pytest.raises(ValueError, match=r"actions must be \(F, 2\)"):
        simulate(0, np.zeros((5, 3)))


def test_direct_control_moves_the_agent_by_the_action():
    """agent_damping=0: an action is the agent's velocity (agent_accel px/frame per unit), nothing carried over."""
    cfg = WorldConfig(size=32, agent_accel=1.0, agent_damping=0.0, agent_max_speed=2.0)
    actions = np.array([[0, 0], [1, 0], [1, 0], [0, 0], [0, -0.5]], dtype=np.float32)
    pos = simulate(3, actions, cfg).agent_pos
    np.testing.assert_allclose(np.diff(pos, axis=0), actions[1:], atol=1e-9)  # away from the walls
