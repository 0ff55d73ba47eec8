"""The toy world: sprites bouncing with simple physics and one agent steered by per-frame actions.

Deterministic from a seed; `simulate(seed, actions)` re-renders the ground truth of any action sequence,
which gives drift and control-following metrics a true reference. Frames are (F, S, S, 3) uint8.

Convention: action f moves the world from state f-1 to state f, and frame f renders state f, so frame f and
controls[f] belong together, as the model sees them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

COLOURS = {  # sprite palette: name -> RGB
    "red": (230, 57, 70), "green": (82, 183, 136), "blue": (69, 123, 230), "yellow": (244, 211, 94),
    "magenta": (214, 86, 196), "cyan": (72, 202, 228), "orange": (247, 140, 50),
}
BACKGROUNDS = {  # background gradient ends
    "navy": (20, 30, 70), "forest": (20, 60, 35), "plum": (60, 25, 65), "slate": (45, 50, 60),
    "umber": (70, 45, 25),
}
SHAPES = ("circle", "square", "diamond", "triangle")
AGENT_COLOUR = (250, 250, 250)


@dataclass(frozen=True)
class WorldConfig:
    """Parameters of the toy world.

    Args:
        size: frame edge in pixels (frames are size x size RGB).
        min_sprites, max_sprites: passive sprites per scene.
        min_radius, max_radius: sprite radius in pixels.
        max_speed: initial sprite speed bound, pixels per frame (0: the sprites start at rest).
        sprite_damping: velocity kept per frame by a sprite (1, the default: none lost, sprites bounce forever;
            below 1 a sprite slides to rest, so where it stops follows from where it was pushed).
        agent_radius: radius of the agent in pixels.
        agent_accel: acceleration per unit action, pixels per frame^2.
        agent_damping: velocity kept per frame by the agent (friction); 0 = direct control: the velocity is
            `agent_accel` x the action, so frame f follows from frame f-1 and action f alone.
        agent_max_speed: agent speed bound, pixels per frame.
        agent_collides: the agent bounces off sprites (True) or passes over them (False, the default): then its
            path is a function of the actions alone, so the agent error of a generated stream measures action
            following, not guesses about sprites whose motion the generator has to infer.
        agent_pushes: the agent pushes sprites aside (True): a sprite it runs into is moved out to touch it and
            takes on the agent's speed along the line between their centres, as a box pushed by a player, while
            the agent goes on as steered (its path stays a function of the actions alone); False, the default:
            sprites ignore the agent. Exclusive with `agent_collides`.
        separated: place the bodies of a scene so that none overlaps another at the start (True; drawn again until
            they do not, up to 100 tries); False, the default, places them independently.
        antialias: samples per pixel edge (`render`): 4 = 16 samples per pixel, so sub-pixel motion shows in
            the pixels; 1 = one sample at the pixel centre (hard edges).
    """

    size: int = 32
    min_sprites: int = 2
    max_sprites: int = 3
    min_radius: float = 2.5
    max_radius: float = 4.0
    max_speed: float = 1.2
    agent_radius: float = 3.0
    agent_accel: float = 0.5
    agent_damping: float = 0.85
    agent_max_speed: float = 2.0
    agent_collides: bool = False
    agent_pushes: bool = False
    sprite_damping: float = 1.0
    separated: bool = False
    antialias: int = 4

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"WorldConfig.size must be >= 8 pixels, got {self.size}")
        if not 1 <= self.min_sprites <= self.max_sprites:
            raise ValueError(f"WorldConfig needs 1 <= min_sprites <= max_sprites, got {self.min_sprites}, "
                             f"{self.max_sprites}")
        if self.antialias < 1:
            raise ValueError(f"WorldConfig.antialias must be >= 1 samples per pixel edge, got {self.antialias}")
        if self.agent_collides and self.agent_pushes:
            raise ValueError("WorldConfig.agent_collides and agent_pushes exclude each other: the agent either "
                             "bounces off sprites or pushes them aside")
        if not 0 <= self.sprite_damping <= 1:
            raise ValueError(f"WorldConfig.sprite_damping must be in [0, 1] (velocity kept per frame), got "
                             f"{self.sprite_damping}")
        if self.max_speed < 0:
            raise ValueError(f"WorldConfig.max_speed must be >= 0 pixels per frame, got {self.max_speed}")
        if not 0 < self.min_radius <= self.max_radius:
            raise ValueError(f"WorldConfig needs 0 < min_radius <= max_radius, got {self.min_radius}, "
                             f"{self.max_radius}")

    @property
    def action_dim(self) -> int:
        """Width of an action (the controls): the agent's acceleration (ax, ay) in [-1, 1]^2."""
        return 2

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class State:
    """Bodies of the scene; index 0 is the agent, 1.. the sprites. Positions/velocities in pixels (x, y)."""

    pos: np.ndarray  # (K, 2) float64
    vel: np.ndarray  # (K, 2)
    radius: np.ndarray  # (K,)
    shape: list[str]  # K names, "agent" first
    colour: list[str]  # K names, "white" first
    background: tuple[str, str]  # gradient top, bottom


@dataclass
class Layers:
    """A frame as the renderer paints it: the background gradient, then each body's layer in paint order (the
    sprites, then the agent and its dark centre on top), blended by the fraction of each pixel inside it. What the
    object metrics need: which pixels show which body, and the frame with any bodies painted out.

    Notation: L layers (one per sprite, two for the agent: its disc and its dark centre), S pixel size."""

    background: np.ndarray  # (S, S, 3) float64: the gradient alone
    coverage: np.ndarray  # (L, S, S) fraction of each pixel inside the layer's shape, ignoring what is painted later
    colour: np.ndarray  # (L, 3) float64 RGB of each layer
    body: np.ndarray  # (L,) the body each layer belongs to (0 the agent, 1.. the sprites)

    def visible(self) -> np.ndarray:
        """(L, S, S) the share of each pixel that each layer contributes to the frame: its coverage times what the
        layers painted after it leave uncovered (an occluded body counts only where it shows)."""
        seen = np.empty_like(self.coverage)
        left = np.ones(self.coverage.shape[1:])  # (S, S) what later layers leave uncovered
        for k in range(len(self.coverage) - 1, -1, -1):
            seen[k] = self.coverage[k] * left
            left = left * (1 - self.coverage[k])
        return seen

    def compose(self, without: tuple[int, ...] = ()) -> np.ndarray:
        """The frame (S, S, 3) float64, before rounding: the layers blended over the background in paint order, the
        bodies in `without` painted out (what lies beneath them shows). `compose()` is exactly what `render`
        rounds."""
        img = self.background.copy()
        for k in range(len(self.coverage)):
            if self.body[k] not in without:
                alpha = self.coverage[k][..., None]  # (S, S, 1)
                img = img * (1 - alpha) + self.colour[k] * alpha
        return img

    def image(self, without: tuple[int, ...] = ()) -> np.ndarray:
        """`compose(without)` rounded to the (S, S, 3) uint8 frame the world shows (`image()` is `render`'s)."""
        return self.compose(without).round().astype(np.uint8)


@dataclass
class Episode:
    """A rendered clip and the states behind it."""

    frames: np.ndarray  # (F, S, S, 3) uint8
    agent_pos: np.ndarray  # (F, 2) float64, pixels
    sprite_pos: np.ndarray  # (F, K-1, 2)
    caption: str
    sprite_radius: np.ndarray | None = None  # (K-1,) pixels
    layers: list[Layers] | None = None  # each frame's layers (`simulate(..., layers=True)`): the objects' truth


def initial_state(seed: int, cfg: WorldConfig) -> State:
    """The scene drawn from `seed`: sprites with shapes, colours, positions and velocities; agent at rest."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(cfg.min_sprites, cfg.max_sprites + 1))
    radius = np.concatenate([[cfg.agent_radius], rng.uniform(cfg.min_radius, cfg.max_radius, n)])
    pos = rng.uniform(radius[:, None], cfg.size - radius[:, None], (n + 1, 2))
    for _ in range(100 if cfg.separated else 0):  # draw again until no two bodies overlap
        gaps = np.linalg.norm(pos[:, None] - pos[None], axis=-1) - radius[:, None] - radius[None]  # (K, K)
        if (gaps[np.triu_indices(n + 1, 1)] >= 0).all():
            break
        pos = rng.uniform(radius[:, None], cfg.size - radius[:, None], (n + 1, 2))
    vel = np.concatenate([[[0.0, 0.0]], sprite_velocities(rng, n, cfg)])
    shapes = ["agent", *(SHAPES[i] for i in rng.integers(0, len(SHAPES), n))]
    colours = ["white", *(str(c) for c in rng.choice(list(COLOURS), n, replace=False))]
    background = tuple(str(c) for c in rng.choice(list(BACKGROUNDS), 2, replace=False))
    return State(pos, vel, radius, shapes, colours, background)


def clip_action(action) -> np.ndarray:
    """The world's action space: each component in [-1, 1] (a larger push is the largest one). The one place an
    action is bounded: `step` applies it, and a live game (`play`) gives its model the same bounded action."""
    return np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)


def step(state: State, action: np.ndarray, cfg: WorldConfig) -> None:
    """Advance one frame in place under `action` (bounded by `clip_action`): agent acceleration, sprite friction,
    motion, wall bounces, elastic collisions (between sprites; with the agent when `agent_collides`), and the agent's
    pushes when `agent_pushes`."""
    a = clip_action(action)
    state.vel[1:] *= cfg.sprite_damping
    state.vel[0] = state.vel[0] * cfg.agent_damping + cfg.agent_accel * a
    speed = np.linalg.norm(state.vel[0])
    if speed > cfg.agent_max_speed:
        state.vel[0] *= cfg.agent_max_speed / speed
    state.pos += state.vel
    low, high = state.radius[:, None], cfg.size - state.radius[:, None]
    below, above = state.pos < low, state.pos > high
    state.vel[below | above] *= -1  # bounce off the walls
    state.pos = np.where(below, 2 * low - state.pos, np.where(above, 2 * high - state.pos, state.pos))
    mass = state.radius**2
    for i in range(0 if cfg.agent_collides else 1, len(mass)):
        for j in range(i + 1, len(mass)):
            delta = state.pos[j] - state.pos[i]
            dist = float(np.hypot(*delta))
            if dist >= state.radius[i] + state.radius[j] or dist == 0.0:
                continue
            normal = delta / dist
            approach = float(np.dot(state.vel[i] - state.vel[j], normal))
            if approach <= 0:
                continue  # already separating
            impulse = 2 * approach / (mass[i] + mass[j])
            state.vel[i] -= impulse * mass[j] * normal
            state.vel[j] += impulse * mass[i] * normal
    if cfg.agent_pushes:  # a sprite the agent runs into is moved out to touch it, at least at its speed
        for j in range(1, len(mass)):
            delta = state.pos[j] - state.pos[0]
            dist = float(np.hypot(*delta))
            touch = state.radius[0] + state.radius[j]
            if dist >= touch or dist == 0.0:
                continue
            normal = delta / dist
            state.pos[j] = state.pos[0] + touch * normal
            approach = float(np.dot(state.vel[0] - state.vel[j], normal))
            if approach > 0:
                state.vel[j] += approach * normal
        outside = (state.pos < low) | (state.pos > high)  # a sprite pushed into a wall stops there
        state.vel[outside] = 0.0
        state.pos = np.clip(state.pos, low, high)


def inside(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Whether points at offsets (dx, dy) from a body's centre lie inside its shape of radius r."""
    if shape in ("circle", "agent"):
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        return (np.abs(dx) <= 0.8 * r) & (np.abs(dy) <= 0.8 * r)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    return (dy <= 0.8 * r) & (dy >= -r) & (np.abs(dx) <= (dy + r) / 1.8 * 0.9)  # triangle, apex up


def render_layers(state: State, cfg: WorldConfig) -> Layers:
    """The scene's layers (`Layers`). Each pixel of a layer is the mean of `antialias`^2 samples on a regular grid
    inside it (1: one sample at the pixel centre i + 0.5, hard edges), so a body moving by a fraction of a pixel
    changes its edge pixels by that fraction: motion is continuous in the pixels, as in a camera image."""
    s, n = cfg.size, cfg.antialias
    t = (np.arange(s) + 0.5)[:, None, None] / s  # (S, 1, 1) vertical ramp
    top, bottom = (np.array(BACKGROUNDS[name], dtype=np.float64) for name in state.background)
    background = np.broadcast_to((1 - t) * top + t * bottom, (s, s, 3)).copy()
    offsets = (np.arange(n) + 0.5) / n  # sample positions inside a pixel
    coverage, colours, bodies = [], [], []

    def paint(shape: str, k: int, r: float, colour) -> None:  # the fraction of each pixel inside the shape
        layer = np.zeros((s, s))
        x, y = state.pos[k]
        x0, x1 = max(int(np.floor(x - r)) - 1, 0), min(int(np.ceil(x + r)) + 1, s)  # the body's pixel box
        y0, y1 = max(int(np.floor(y - r)) - 1, 0), min(int(np.ceil(y + r)) + 1, s)
        if x0 < x1 and y0 < y1:
            gx = (np.arange(x0, x1)[:, None] + offsets).reshape(-1)  # (w*n,) sample coordinates
            gy = (np.arange(y0, y1)[:, None] + offsets).reshape(-1)
            hit = inside(shape, gx[None, :] - x, gy[:, None] - y, r)  # (h*n, w*n)
            layer[y0:y1, x0:x1] = hit.reshape(y1 - y0, n, x1 - x0, n).mean(axis=(1, 3))  # (h, w)
        coverage.append(layer)
        colours.append(colour)
        bodies.append(k)

    for k in [*range(1, len(state.radius)), 0]:  # the agent on top
        shape = state.shape[k]
        paint(shape, k, state.radius[k], AGENT_COLOUR if shape == "agent" else COLOURS[state.colour[k]])
        if shape == "agent":  # a dark centre marks the agent's position
            paint("circle", k, 0.4 * state.radius[k], (20, 20, 20))
    return Layers(background, np.stack(coverage), np.asarray(colours, dtype=np.float64), np.asarray(bodies))


def render(state: State, cfg: WorldConfig) -> np.ndarray:
    """The scene as a (S, S, 3) uint8 frame: its layers (`render_layers`) blended and rounded."""
    return render_layers(state, cfg).image()


def caption(state: State, cfg: WorldConfig | None = None) -> str:
    """A sentence describing the scene (of a world whose sprites start at rest and are pushed by the agent, or
    bounce about on their own)."""
    sprites = [f"{'an' if c[0] in 'aeiou' else 'a'} {c} {s}"
               for s, c in zip(state.shape[1:], state.colour[1:], strict=True)]
    listed = ", ".join(sprites[:-1]) + f" and {sprites[-1]}" if len(sprites) > 1 else sprites[0]
    top, bottom = state.background
    if cfg is not None and cfg.agent_pushes and cfg.max_speed == 0:
        return f"{listed} lie on a {top} to {bottom} background where a white agent pushes them about"
    return f"{listed} bounce over a {top} to {bottom} background while a white agent moves"


def sprite_velocities(rng: np.random.Generator, n: int, cfg: WorldConfig) -> np.ndarray:
    """Velocities (n, 2) of n sprites drawn from the scene prior: uniform direction, speed in [0.3, 1] x max."""
    angle = rng.uniform(0, 2 * np.pi, n)
    speed = rng.uniform(0.3, 1.0, n) * cfg.max_speed
    return np.stack([np.cos(angle), np.sin(angle)], 1) * speed[:, None]


def simulate(seed: int, actions: np.ndarray, cfg: WorldConfig | None = None, redraw_after: int | None = None,
             redraw_seed: int = 0, layers: bool = False) -> Episode:
    """Render the clip of scene `seed` under actions (F, 2): frame f shows the state after action f.

    `redraw_after=K` redraws the sprites' velocities from the prior (seeded by `redraw_seed`) once frame K-1 is
    rendered: the future of a scene whose first K frames are known but whose motion is not read from them (the
    perfect-physics sampler that evaluation compares generators with). The agent keeps its true state: its
    actions are given. `layers=True` keeps each frame's `Layers` (which pixels show which body).
    """
    cfg = cfg or WorldConfig()
    actions = np.asarray(actions)
    if actions.ndim != 2 or actions.shape[1] != cfg.action_dim:
        raise ValueError(f"actions must be (F, {cfg.action_dim}); got {actions.shape}")
    state = initial_state(seed, cfg)
    frames, agent, sprites, painted = [], [], [], []
    for f, a in enumerate(actions):
        if f == redraw_after:
            state.vel[1:] = sprite_velocities(np.random.default_rng(redraw_seed), len(state.radius) - 1, cfg)
        step(state, a, cfg)
        painted.append(render_layers(state, cfg))
        frames.append(painted[-1].image())
        agent.append(state.pos[0].copy())
        sprites.append(state.pos[1:].copy())
    return Episode(np.stack(frames), np.stack(agent), np.stack(sprites), caption(state, cfg), state.radius[1:].copy(),
                   painted if layers else None)


def scripted_actions(seed: int, num_frames: int, persistence: float = 0.85, idle: float = 0.2) -> np.ndarray:
    """A steering policy with persistence: (F, 2) float32 actions in [-1, 1].

    Each frame keeps the previous action with probability `persistence`; otherwise it draws a new one:
    rest (zeros) with probability `idle`, else a random direction at a random strength in [0.5, 1].
    """
    rng = np.random.default_rng(seed)
    actions = np.zeros((num_frames, 2), dtype=np.float32)
    current = np.zeros(2)
    for f in range(num_frames):
        if f == 0 or rng.random() > persistence:
            if rng.random() < idle:
                current = np.zeros(2)
            else:
                angle = rng.uniform(0, 2 * np.pi)
                current = rng.uniform(0.5, 1.0) * np.array([np.cos(angle), np.sin(angle)])
        actions[f] = current
    return actions
