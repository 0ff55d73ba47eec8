"""`Game`: a live stream of the toy world as a player sees it: the generated frame, the world re-rendered for the
same actions beside it, the agent's error, and a log of everything the player did since the scene started, from
which a recording replays exactly.

Notation: S frame size in pixels, t video frames per step (1 on the toy world).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from lightning_aapt.cli.play.protocol import BadMessage, parse
from lightning_aapt.errors import ConfigError
from lightning_aapt.evaluation.toy import object_truth
from lightning_aapt.files import atomic_path
from lightning_aapt.inference.session import InteractiveSession
from lightning_aapt.metrics.drift import agent_error, locate_agent
from lightning_aapt.metrics.objects import score_objects
from lightning_aapt.video import write_video
from lightning_aapt.world.live import LiveWorld
from lightning_aapt.world.scene import clip_action


@dataclass
class Tick:
    """One frame of play."""

    index: int  # frames generated since the scene started
    generated: np.ndarray  # (t, S, S, 3) uint8
    truth: np.ndarray  # (S, S, 3) uint8: the world after the same actions
    agent_error: float  # pixels between the agent found in the generated frame and the true one (lost: S)
    agent: tuple[float, float] | None  # the agent found in the generated frame (x, y) in pixels; None: lost
    true_agent: tuple[float, float]  # where the world has it
    objects_kept: float | None  # share of the objects the truth shows that the generated frame keeps in place
    model_ms: float
    decode_ms: float


@dataclass
class PlayLog:
    """What replays a session exactly: the stream's settings, the scene, and every action and prompt switch in
    order since the scene started (`events`: ["act", [ax, ay]] or ["prompt", text]); a recording keeps the frames
    from `record_from` on, with the SHA-256 of their pixels."""

    steps: int
    shift: float
    seed: int
    context_frames: int
    scene: int
    events: list = field(default_factory=list)
    record_from: int = 0
    frames_sha256: str | None = None

    @classmethod
    def read(cls, path: Path, action_dim: int) -> PlayLog:
        """A log from its JSON file, every field checked against what a recording can hold (an edited log is
        refused by field, not run for minutes or ended in a traceback)."""
        where = f"--replay {path}"
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise ConfigError(f"{where}: not a play log's JSON ({err})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a JSON object (a play log), got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(data) - fields):
            raise ConfigError(f"{where}: unknown field(s) {unknown}; a play log holds {sorted(fields)}")
        if missing := sorted({"steps", "shift", "seed", "context_frames", "scene"} - set(data)):
            raise ConfigError(f"{where}: missing field(s) {missing}")

        def integer(key: str, low: int, high: int) -> int:
            value = data.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ConfigError(f"{where}: {key} must be an integer in [{low}, {high}], got {value!r}")
            return value

        shift = data["shift"]
        if not isinstance(shift, int | float) or isinstance(shift, bool) or not 0 < shift <= 1000:
            raise ConfigError(f"{where}: shift must be a number in (0, 1000], got {shift!r}")
        digest = data.get("frames_sha256")
        if digest is not None and not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise ConfigError(f"{where}: frames_sha256 must be null or 64 hex digits, got {digest!r}")
        events = data.get("events", [])
        if not isinstance(events, list) or len(events) > MAX_EVENTS:
            raise ConfigError(f"{where}: events must be a list of at most {MAX_EVENTS} entries")
        for i, event in enumerate(events):
            check_event(event, action_dim, f"{where}: events[{i}]")
        return cls(steps=integer("steps", 1, 64), shift=float(shift), seed=integer("seed", 0, 2**63 - 1),
                   context_frames=integer("context_frames", 1, 64), scene=integer("scene", 0, 2**31 - 1),
                   events=events, record_from=integer("record_from", 0, MAX_EVENTS), frames_sha256=digest)


MAX_EVENTS = 1_000_000  # actions and prompt switches of one log (17 hours at 16 frames a second)


def check_event(event, action_dim: int, where: str) -> None:
    """["act", [ax, ...]] with `action_dim` finite numbers, or ["prompt", text] as the page may send it."""
    if not (isinstance(event, list) and len(event) == 2 and event[0] in ("act", "prompt")):
        raise ConfigError(f'{where}: expected ["act", [numbers]] or ["prompt", "text"], got {str(event)[:80]}')
    kind, value = event
    if kind == "act":
        if not (isinstance(value, list) and len(value) == action_dim and all(
                isinstance(a, int | float) and not isinstance(a, bool) and math.isfinite(a) for a in value)):
            raise ConfigError(f"{where}: an action must be {action_dim} finite numbers, got {str(value)[:80]}")
    else:
        try:
            parse(json.dumps({"type": "prompt", "text": value}), action_dim)
        except BadMessage as err:
            raise ConfigError(f"{where}: {err}") from None


def frames_hash(frames: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for f in frames:
        digest.update(np.ascontiguousarray(f).tobytes())
    return digest.hexdigest()


class Game:
    """The toy world played live through an `InteractiveSession`.

    Args:
        session: the stream (its model, codec and text encoder).
        world: the toy world to re-render the truth in (the dataset's).
        context_frames: real frames a scene starts from (the agent at rest), fed through the cache.
        scene: the first scene's seed.
    """

    def __init__(self, session: InteractiveSession, world: LiveWorld, context_frames: int = 2, scene: int = 0) -> None:
        if context_frames < 1:
            raise ValueError(f"context_frames must be >= 1, got {context_frames}")
        self.session, self.world, self.context_frames = session, world, context_frames
        self.log: PlayLog | None = None
        self.recorded: list[tuple[np.ndarray, np.ndarray]] | None = None  # (generated, truth) while recording
        self.error_sum = 0.0
        self.kept_sum, self.kept_frames = 0.0, 0
        self.new_scene(scene)

    @property
    def mean_agent_error(self) -> float:
        """The mean agent error (pixels) since the scene started."""
        return self.error_sum / max(self.session.frames_generated, 1)

    @property
    def mean_objects_kept(self) -> float | None:
        """The share of objects kept (`lightning_aapt.metrics.objects`) over the frames since the scene started
        that showed any (None before the first)."""
        return self.kept_sum / self.kept_frames if self.kept_frames else None

    def new_scene(self, scene: int) -> None:
        """Start scene `scene` (its caption as the prompt) from `context_frames` true frames."""
        video, actions, caption = self.world.reset(scene, self.context_frames)
        self.session.reset(caption, frames=video, actions=actions)
        s = self.session
        self.log = PlayLog(s.steps, s.shift, s.seed, self.context_frames, scene)
        self.recorded = None
        self.error_sum = 0.0
        self.kept_sum, self.kept_frames = 0.0, 0

    def set_prompt(self, text: str) -> None:
        self.session.set_prompt(text)
        self.log.events.append(["prompt", text])

    def act(self, action) -> Tick:
        """The next frame under `action` (ax, ay) in [-1, 1]: generated, and the truth beside it."""
        action = [float(a) for a in clip_action(action)]  # the model is given what the world applies
        frame = self.session.step(action)
        truth, position = self.world.step(action)
        last = torch.from_numpy(frame.images[-1]).permute(2, 0, 1).float()[None, None] / 255  # (1, 1, 3, S, S)
        error = float(agent_error(last, torch.from_numpy(position)[None, None]).item())
        found = locate_agent(last)[0, 0]
        agent = None if bool(found.isnan().any()) else (float(found[0]), float(found[1]))
        self.error_sum += error
        kept = self.objects_kept(last)
        if kept is not None:
            self.kept_sum, self.kept_frames = self.kept_sum + kept, self.kept_frames + 1
        self.log.events.append(["act", action])
        if self.recorded is not None:
            self.recorded.append((frame.images, truth))
        return Tick(frame.index, frame.images, truth, error, agent, (float(position[0]), float(position[1])), kept,
                    1e3 * frame.model_seconds, 1e3 * frame.decode_seconds)

    def objects_kept(self, frame: torch.Tensor) -> float | None:
        """The share of the objects the world shows now that a generated frame (1, 1, 3, S, S) keeps near their
        true place; None when the truth shows none."""
        episode = self.world.frame()
        truth = torch.from_numpy(episode.frames).permute(0, 3, 1, 2).float()[None] / 255  # (1, 1, 3, S, S)
        scores = score_objects(frame, object_truth([episode], truth))
        return None if not scores.scored.any() else scores.mean(scores.near >= 0.5)

    @property
    def recording(self) -> bool:
        return self.recorded is not None

    def start_recording(self) -> None:
        self.recorded = []
        self.log.record_from = self.session.frames_generated

    def stop_recording(self, directory: Path, fps: float, scale: int = 8) -> tuple[Path | None, Path]:
        """Write the recording: `<stem>.mp4` (generated | truth, upscaled `scale` times; None when no frame was made)
        and `<stem>.json` (the log that replays it, with its frames' hash). Returns both paths."""
        if self.recorded is None:
            raise RuntimeError("not recording")
        recorded, self.recorded = self.recorded, None
        directory.mkdir(parents=True, exist_ok=True)
        base = directory / f"play-{time.strftime('%Y%m%d-%H%M%S')}-scene{self.log.scene}-from{self.log.record_from}"
        for n in itertools.count(1):  # claim a name (exclusive create): two recordings stopped in one second keep both
            stem = base if n == 1 else base.with_name(f"{base.name}-{n}")
            try:
                stem.with_suffix(".json").open("x").close()
                break
            except FileExistsError:
                continue
        log = PlayLog(**{**asdict(self.log), "events": list(self.log.events),
                         "frames_sha256": frames_hash([g for g, _ in recorded])})
        video = stem.with_suffix(".mp4") if recorded else None
        if video is not None:
            side = [np.concatenate([g[-1], t], axis=1) for g, t in recorded]  # (S, 2S, 3)
            write_video(video, np.stack(side), fps=fps, scale=scale)
        with atomic_path(stem.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(asdict(log), indent=1))
        return video, stem.with_suffix(".json")


def replay(log: PlayLog, session: InteractiveSession, world: LiveWorld) -> list[np.ndarray]:
    """The generated frames (each (t, S, S, 3)) of a logged session from its `record_from` on, made again with
    `session` (the same checkpoint, steps, shift and seed as the log's)."""
    if (session.steps, session.shift, session.seed) != (log.steps, log.shift, log.seed):
        raise ValueError(f"the log was played with steps={log.steps}, shift={log.shift}, seed={log.seed}; this "
                         f"session has steps={session.steps}, shift={session.shift}, seed={session.seed}")
    game = Game(session, world, log.context_frames, log.scene)
    frames = []
    for kind, value in log.events:
        if kind == "prompt":
            game.set_prompt(value)
        elif kind == "act":
            tick = game.act(value)
            if tick.index >= log.record_from:
                frames.append(tick.generated)
        else:
            raise ValueError(f"unknown event {kind!r} in the play log")
    return frames
