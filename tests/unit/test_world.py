"""The toy world: deterministic, physical, controllable, and able to re-render its ground truth."""

import numpy as np
import pytest

from lightning_aapt.world import WorldConfig, initial_state, scripted_actions, simulate
from lightning_aapt.world.scene import step

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


PUSH = WorldConfig(size=32, min_sprites=2, max_sprites=4, max_speed=0.0, agent_pushes=True, sprite_damping=0.5,
                   separated=True,
                   agent_accel=0.75, agent_damping=0.0, agent_max_speed=1.0)


def test_sprites_at_rest_stay_put_until_the_agent_pushes_them():
    """max_speed 0 + agent_pushes: a sprite the agent never reaches never moves; one it runs into is pushed away,
    slides, and comes to rest (sprite_damping); the agent's own path is the actions' alone."""
    pushed = 0
    for seed in range(20):
        actions = scripted_actions(100 + seed, 80)
        ep = simulate(seed, actions, PUSH)
        assert np.array_equal(ep.agent_pos, simulate(seed, actions, WorldConfig(**{**PUSH.to_dict(),
                                                                              "agent_pushes": False})).agent_pos)
        gap = np.linalg.norm(ep.sprite_pos - ep.agent_pos[:, None], axis=-1)  # (F, K-1) centre distances
        radius = ep.sprite_radius + PUSH.agent_radius
        moved = np.linalg.norm(np.diff(ep.sprite_pos, axis=0), axis=-1) > 0  # (F-1, K-1)
        for k in range(gap.shape[1]):
            if not moved[:, k].any():
                continue
            first = int(np.argmax(moved[:, k])) + 1  # the first frame it has moved in
            touched = (gap[:first + 1, k] < radius[k] + 1e-9).any() or any(  # by the agent, or a pushed sprite
                (np.linalg.norm(ep.sprite_pos[first, k] - ep.sprite_pos[first, j]) < ep.sprite_radius[[k, j]].sum() + 2)
                for j in range(gap.shape[1]) if j != k)
            assert touched, f"scene {seed}: sprite {k} moved at frame {first} without being reached"
            pushed += 1
        still = ~moved.any(axis=0)
        np.testing.assert_array_equal(ep.sprite_pos[-1, still], ep.sprite_pos[0, still])
    assert pushed >= 5  # the policy does run into sprites


def test_a_pushed_sprite_slides_to_rest():
    cfg = WorldConfig(**{**PUSH.to_dict(), "min_sprites": 1, "max_sprites": 1})
    state = initial_state(0, cfg)
    state.vel[1] = (1.0, 0.0)
    for _ in range(60):
        step(state, np.zeros(2), cfg)
    assert np.linalg.norm(state.vel[1]) < 1.0 * 0.85**59  # friction alone (walls only reverse it)


def test_a_world_that_both_collides_and_pushes_is_refused():
    with pytest.raises(ValueError, match="agent_collides and agent_pushes"):
        WorldConfig(agent_collides=True, agent_pushes=True)
    with pytest.raises(ValueError, match="sprite_damping"):
        WorldConfig(sprite_damping=1.5)


def test_the_caption_says_how_the_sprites_move():
    assert "bounce over" in simulate(2, np.zeros((1, 2), np.float32)).caption
    assert "agent pushes them" in simulate(2, np.zeros((1, 2), np.float32), PUSH).caption
