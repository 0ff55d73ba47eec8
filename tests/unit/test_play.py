"""Playing live without a browser: the session streams what the generator streams, a prompt switch keeps the window,
a logged session replays exactly, pacing never bursts, and the protocol refuses what it does not understand."""

import json
import re

import numpy as np
import pytest
import torch

from lightning_aapt.cli.play.game import Game, PlayLog, frames_hash, replay
from lightning_aapt.cli.play.protocol import Action, BadMessage, NewScene, pack_frame, parse, unpack_frame
from lightning_aapt.data import dataset_codec
from lightning_aapt.errors import ConfigError
from lightning_aapt.inference import StreamingGenerator
from lightning_aapt.inference.session import InteractiveSession, Pacer, paced
from lightning_aapt.world.dataset import spec_from_manifest
from lightning_aapt.world.live import LiveWorld
from lightning_aapt.world.scene import simulate
from tests.helpers_play import playable_model

pytestmark = pytest.mark.unit


@pytest.fixture
def parts(toy_data):
    spec = spec_from_manifest(toy_data)
    return playable_model(), dataset_codec(toy_data), spec.text_encoder(), spec.world


def test_the_live_world_is_the_simulated_one(parts):
    *_, world = parts
    actions = np.random.default_rng(0).uniform(-1, 1, (6, 2))
    live = LiveWorld(world)
    video, context_actions, caption = live.reset(3, 2)
    frames = [live.step(a)[0] for a in actions[2:]]
    episode = simulate(3, np.concatenate([context_actions, actions[2:]]), world)
    assert np.array_equal(np.stack(frames), episode.frames[2:]) and caption == episode.caption
    assert torch.equal((video * 255).round().byte().permute(0, 2, 3, 1), torch.from_numpy(episode.frames[:2]))


def test_a_session_streams_what_the_generator_streams(parts):
    model, codec, encoder, world = parts
    video, _, caption = LiveWorld(world).reset(5, 2)
    session = InteractiveSession(model, codec, encoder, seed=4)
    session.reset(caption, frames=video)
    actions = torch.tensor([[1.0, 0.0], [0.0, -1.0], [0.6, 0.8]])
    played = [session.step(a) for a in actions]
    gen = StreamingGenerator(model, seed=4)
    gen.reset(encoder.encode([caption]), context=codec.encode(video[None]), context_controls=torch.zeros(1, 2, 2))
    expected = gen.generate(3, actions[None])[0]  # (3, C, h, w)
    torch.testing.assert_close(torch.stack([p.latent for p in played]), expected, atol=0, rtol=0)
    decoded = codec.decode(expected[None])[0]  # (3, 3, S, S)
    assert np.array_equal(np.stack([p.images[0] for p in played]),
                          (decoded.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy())


def test_a_prompt_switch_keeps_the_window_and_changes_what_follows(parts):
    model, codec, encoder, world = parts
    video, _, caption = LiveWorld(world).reset(1, 2)
    runs = []
    for switch in (False, True):
        session = InteractiveSession(model, codec, encoder)
        session.reset(caption, frames=video)
        frames = [session.step([1.0, 0.0]).latent for _ in range(3)]
        kept = session.generator.num_frames
        if switch:
            session.set_prompt("a red circle bounces over a navy to plum background while a white agent moves")
        assert session.generator.num_frames == kept  # the window is kept
        runs.append([*frames, session.step([1.0, 0.0]).latent])
    for before, after in zip(runs[0][:3], runs[1][:3], strict=True):
        torch.testing.assert_close(before, after, atol=0, rtol=0)
    assert not torch.equal(runs[0][3], runs[1][3])


def test_a_logged_session_replays_exactly(parts, tmp_path):
    model, codec, encoder, world = parts

    def game():
        return Game(InteractiveSession(model, codec, encoder, seed=2), LiveWorld(world), 2, scene=9)

    played = game()
    played.act([1.0, 0.0])
    played.start_recording()
    shown = [played.act(a).generated for a in ([0.0, 1.0], [-1.0, 0.0])]
    played.set_prompt("a blue square bounces over a slate to umber background while a white agent moves")
    shown += [played.act([0.5, 0.5]).generated for _ in range(3)]
    video, log_path = played.stop_recording(tmp_path, fps=8)
    assert video.is_file() and video.stat().st_size > 0
    log = PlayLog(**json.loads(log_path.read_text()))
    assert log.record_from == 1 and log.frames_sha256 == frames_hash(shown)
    again = replay(log, InteractiveSession(model, codec, encoder, seed=2), LiveWorld(world))
    assert frames_hash(again) == log.frames_sha256
    with pytest.raises(ValueError, match="seed=2"):
        replay(log, InteractiveSession(model, codec, encoder, seed=3), LiveWorld(world))


def test_an_action_beyond_the_worlds_range_drives_the_model_as_the_world_applies_it(parts):
    """The world bounds an action once (`clip_action`); the game gives its model that same action, so a push of 5
    makes the frame a push of 1 makes, and the log records what was applied."""
    model, codec, encoder, world = parts
    frames = []
    for push in ([5.0, -3.0], [1.0, -1.0]):
        played = Game(InteractiveSession(model, codec, encoder, seed=2), LiveWorld(world), 2, scene=9)
        frames.append(played.act(push).generated)
        assert played.log.events[-1] == ["act", [1.0, -1.0]]
    assert np.array_equal(frames[0], frames[1])


def test_two_recordings_stopped_in_one_second_keep_both(parts, tmp_path, monkeypatch):
    import lightning_aapt.cli.play.game as game_module

    model, codec, encoder, world = parts
    monkeypatch.setattr(game_module.time, "strftime", lambda fmt: "20261207-120000")  # one second for both
    written = []
    for _ in range(2):
        played = Game(InteractiveSession(model, codec, encoder, seed=2), LiveWorld(world), 2, scene=9)
        played.start_recording()
        played.act([1.0, 0.0])
        written += played.stop_recording(tmp_path, fps=8)
    assert len(set(written)) == 4 and all(p.stat().st_size > 0 for p in written)
    assert written[3].name == "play-20261207-120000-scene9-from0-2.json"


class FakeClock:
    """Time that passes only when slept (or spent on purpose): pacing checked without a real clock."""

    def __init__(self) -> None:
        self.now = 100.0
        self.ticks: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_pacer_ticks_at_the_rate_and_never_bursts():
    clock = FakeClock()
    pacer = Pacer(fps=50, clock=clock)
    for _ in range(5):
        clock.sleep(pacer.delay())
        pacer.tick()
        clock.ticks.append(clock.now)
    assert np.allclose(np.diff(clock.ticks), 0.02) and pacer.late == 0  # one period apart
    clock.sleep(pacer.delay() + 0.004)  # a tick 4 ms late (within a quarter period): the schedule holds
    pacer.tick()
    assert pacer.late == 0 and pacer.delay() == pytest.approx(0.016)
    clock.sleep(0.1)  # a slow frame: the next tick is late ...
    pacer.tick()
    assert pacer.late == 1 and pacer.delay() == pytest.approx(0.02)  # ... and the one after waits a whole period


def test_paced_play_reads_the_latest_action_at_each_tick(parts):
    model, codec, encoder, world = parts
    video, _, caption = LiveWorld(world).reset(2, 2)
    session = InteractiveSession(model, codec, encoder)
    session.reset(caption, frames=video)
    clock = FakeClock()
    actions = iter([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    read_at = []

    def latest():
        read_at.append(clock.now)
        return next(actions)

    made = list(paced(session, 40, latest, 4, clock=clock, sleep=clock.sleep))
    assert [f.index for f in made] == [0, 1, 2, 3] and np.allclose(np.diff(read_at), 0.025)


def test_the_protocol_refuses_what_it_does_not_understand():
    assert parse('{"type": "action", "action": [2, -0.5], "seq": 3}', 2) == Action((1.0, -0.5), 3)
    assert parse('{"type": "new_scene", "scene": null}', 2) == NewScene(None)
    for garbage, named in [("not json", "not JSON"), ("[1, 2]", '"type"'), ('{"type": "fly"}', "unknown message"),
                           ('{"type": "action", "action": [1], "seq": 0}', "2 finite numbers"),
                           ('{"type": "action", "action": [1, NaN], "seq": 0}', "finite"),
                           ('{"type": "action", "action": [1, 0], "seq": -1}', '"seq"'),
                           ('{"type": "prompt", "text": ""}', '"text"'), ('{"type": "pause"}', '"paused"'),
                           ("x" * 5000, "at most 4096")]:
        with pytest.raises(BadMessage, match=named):
            parse(garbage, 2)
    images = [np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(2)]
    header, back = unpack_frame(pack_frame({"index": 4}, images))
    assert header["index"] == 4 and all(np.array_equal(a, b) for a, b in zip(images, back, strict=True))



GOOD_LOG = {"steps": 1, "shift": 1.0, "seed": 2, "context_frames": 2, "scene": 9, "record_from": 1,
            "events": [["act", [1.0, 0.0]], ["prompt", "a blue square"], ["act", [0.5, -0.5]]],
            "frames_sha256": "0" * 64}


@pytest.mark.parametrize("edit, message", [
    ({"context_frames": 100000}, r"context_frames must be an integer in \[1, 64\], got 100000"),
    ({"extra": 1}, r"unknown field\(s\) \['extra'\]"),
    ({"steps": 0}, r"steps must be an integer in \[1, 64\], got 0"),
    ({"steps": True}, r"steps must be an integer"),
    ({"shift": float("nan")}, r"shift must be a number in \(0, 1000\]"),
    ({"seed": -1}, r"seed must be an integer in \[0, "),
    ({"scene": "nine"}, r"scene must be an integer"),
    ({"record_from": -3}, r"record_from must be an integer in \[0, "),
    ({"frames_sha256": "abc"}, r"frames_sha256 must be null or 64 hex digits"),
    ({"events": {"act": 1}}, r"events must be a list of at most"),
    ({"events": [["jump", 1]]}, r'events\[0\]: expected \["act", \[numbers\]\] or \["prompt", "text"\]'),
    ({"events": [["act", [1.0]]]}, r"events\[0\]: an action must be 2 finite numbers"),
    ({"events": [["act", [1.0, 0.0]], ["prompt", "\ud800"]]}, r"events\[1\]: .*lone surrogate"),
])
def test_an_edited_play_log_is_refused_by_field(tmp_path, edit, message):
    path = tmp_path / "log.json"
    path.write_text(json.dumps({**GOOD_LOG, **edit}))
    with pytest.raises(ConfigError, match=rf"^--replay {re.escape(str(path))}: {message}"):
        PlayLog.read(path, action_dim=2)


def test_a_play_log_that_is_no_log_is_refused(tmp_path):
    path = tmp_path / "log.json"
    path.write_text(json.dumps(GOOD_LOG))
    assert PlayLog.read(path, action_dim=2) == PlayLog(**GOOD_LOG)
    for text, message in (("not json", "not a play log's JSON"), ("[1, 2]", "expected a JSON object"),
                          (json.dumps({"steps": 1}), r"missing field\(s\) \['context_frames', 'scene'")):
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            PlayLog.read(path, action_dim=2)
    path.write_bytes(b"\xff\xfe binary")
    with pytest.raises(ConfigError, match="not a play log's JSON"):
        PlayLog.read(path, action_dim=2)
