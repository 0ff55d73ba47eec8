"""The `play` server: a static page and a WebSocket per player (Starlette on uvicorn), each with its own `Game`.

Per connection, one task paces the stream (`Pacer`: a frame per tick of the world's frame rate, the latest action at
each tick, never more than one frame ahead) and another reads the player's messages: actions take effect at the next
tick; a new scene, a prompt switch, pause and record are applied between frames, the latest of each kind (a flood of
prompts costs at most one prompt a frame, and holds one message). Model calls run in a worker thread, one at a time
across sessions (`compute` lock), so the event loop keeps answering while a frame is made. A message the server does
not understand is answered with an error and ignored; a client that vanishes ends its session only, and its stream's
memory goes with it (`/stats` counts the sessions still alive, collecting garbage at most once a second).

Only the addresses it serves may reach it: a request whose `Host` is another name (DNS rebinding) is refused, and so
is a WebSocket opened from a page of another origin (any site in the user's browser), unless `allow_origins` names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import html
import math
import secrets
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from lightning_aapt.cli.play.game import Game
from lightning_aapt.cli.play.protocol import Action, BadMessage, NewScene, Pause, Prompt, Record, pack_frame, parse
from lightning_aapt.inference.session import Pacer

MAX_MESSAGES_PER_SECOND = 240  # a player's messages read a second (held keys send a few dozen)


@dataclass
class PlaySettings:
    """What the server serves.

    Args:
        fps: frames per second of the world (the pace of every stream).
        max_sessions: players at once; the next one is refused with a message.
        record_dir: where recordings are written.
        record_scale: pixel upscaling of recorded MP4s.
        first_scene: the scene a new player starts in (later "new scene"s count up from it).
        title: shown on the page (the checkpoint; escaped).
        allowed_hosts: the names the server answers to (its `Host` header; the loopback names and the address it
            listens on).
        allow_origins: origins (scheme://host:port) of other pages that may open a stream, beside its own.
        token: when set, every request must carry it (`?token=...`; the page passes its own on): a server reachable
            beyond this machine answers only those given the URL.
    """

    fps: float = 8.0
    max_sessions: int = 4
    record_dir: Path = Path("runs/play")
    record_scale: int = 8
    first_scene: int = 0
    title: str = ""
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    allow_origins: tuple[str, ...] = ()
    token: str | None = None


@dataclass
class Player:
    """One connection's state between the reader and the pacing loop."""

    action: tuple[float, ...]
    seq: int = 0  # the latest input received
    paused: bool = False
    commands: dict = field(default_factory=dict)  # the latest NewScene / Prompt / Record, applied before a frame
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Hub:
    """The sessions of one server: makes a `Game` per player with `make_game(scene)`, counts and limits them."""

    def __init__(self, make_game: Callable[[int], Game], settings: PlaySettings) -> None:
        self.make_game, self.settings = make_game, settings
        self.games: set[Game] = set()
        self.players = 0  # connections admitted (a game is being made or played for each)
        self.alive: weakref.WeakSet = weakref.WeakSet()  # every game not yet garbage-collected
        self.compute = asyncio.Lock()  # one model call at a time
        self.next_scene = settings.first_scene
        self.collected = -math.inf  # when garbage was last collected (for /stats)

    def stats(self) -> dict:
        if time.monotonic() - self.collected >= 1.0:  # polled often, a full collection a request starves players
            # (`serve` froze what was loaded before serving: a collection scans only the players' objects)
            gc.collect()
            self.collected = time.monotonic()
        return {"sessions": len(self.games), "max_sessions": self.settings.max_sessions,
                "alive_sessions": len(self.alive),
                "cache_bytes": sum(g.session.memory_bytes() for g in self.games)}

    async def run(self, fn, *args):
        async with self.compute:
            return await asyncio.to_thread(fn, *args)


def page() -> str:
    return resources.files("lightning_aapt.cli.play").joinpath("static", "index.html").read_text()


def create_app(hub: Hub) -> Starlette:
    settings = hub.settings

    def admitted(connection) -> bool:
        given = connection.query_params.get("token", "")
        return settings.token is None or secrets.compare_digest(given.encode(), settings.token.encode())

    refused = Response("this server needs its token: open the URL `play` printed (…/?token=...)", status_code=403)

    async def index(request):
        if not admitted(request):
            return refused
        return HTMLResponse(page().replace("{{title}}", html.escape(settings.title)))

    async def script(request):
        return Response(resources.files("lightning_aapt.cli.play").joinpath("static", "play.js").read_text(),
                        media_type="text/javascript")

    async def stats(request):
        return JSONResponse(hub.stats()) if admitted(request) else refused

    async def socket(ws: WebSocket):
        origin = ws.headers.get("origin")
        foreign = origin is not None and not allowed_origin(origin, ws.headers.get("host", ""), settings)
        if foreign or not admitted(ws):  # a page of another site, or no token where one is needed
            await ws.close(code=1008)
            return
        await ws.accept()
        if hub.players >= settings.max_sessions:
            await ws.send_json({"type": "error", "fatal": True,
                                "message": f"the server is full: {settings.max_sessions} players at once "
                                           "(play --max_sessions); close another tab and reload"})
            await ws.close(code=1013)
            return
        hub.players += 1  # counted before the game exists, so players arriving together cannot pass the limit
        scene, hub.next_scene = hub.next_scene, hub.next_scene + 1
        game = None
        sending = asyncio.Lock()

        async def send(message) -> None:
            async with sending:
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_json(message)

        try:
            game = await hub.run(hub.make_game, scene)
            hub.games.add(game)
            hub.alive.add(game)
            player = Player(action=(0.0,) * game.session.action_dim)
            await send({"type": "hello", "fps": settings.fps, "scene": scene, "prompt": game.session.prompt,
                        "size": game.world.world.size, "action_dim": game.session.action_dim,
                        "title": settings.title})
            reader = asyncio.create_task(read(ws, player, game.session.action_dim, send))
            try:
                await stream(game, player, reader, send)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
        except (WebSocketDisconnect, ConnectionError):  # the client went away mid-frame: its session ends
            pass
        finally:
            hub.players -= 1
            if game is not None:
                hub.games.discard(game)
                if game.recording:  # the tab closed or the server stops (Ctrl-C) mid-recording: written, not lost
                    with contextlib.suppress(Exception):
                        game.stop_recording(settings.record_dir, settings.fps, settings.record_scale)
            del game

    async def stream(game: Game, player: Player, reader: asyncio.Task, send) -> None:
        pacer = Pacer(settings.fps)
        while not reader.done():
            if player.paused and not player.commands:
                player.wake.clear()
                waiter = asyncio.create_task(player.wake.wait())
                await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                pacer = Pacer(settings.fps)  # no catching up after a pause
                continue
            await asyncio.sleep(pacer.delay())
            if reader.done():
                break
            pacer.tick()
            commands, player.commands = player.commands, {}
            for message in commands.values():  # at most one of each kind a frame (record: one start, one stop)
                await command(game, message, send)
            if player.paused:
                continue
            seq, action = player.seq, player.action
            tick = await hub.run(game.act, action)
            header = {"index": tick.index, "seq": seq, "action": list(action), "generated": len(tick.generated),
                      "model_ms": tick.model_ms, "decode_ms": tick.decode_ms, "agent_error": tick.agent_error,
                      "mean_agent_error": game.mean_agent_error, "agent": tick.agent, "true_agent": tick.true_agent,
                      "objects_kept": tick.objects_kept, "mean_objects_kept": game.mean_objects_kept,
                      "late": pacer.late, "recording": game.recording}
            await send(await asyncio.to_thread(pack_frame, header, [*tick.generated, tick.truth]))
        if (error := reader.exception()) is not None and not isinstance(error, WebSocketDisconnect):
            raise error

    async def command(game: Game, message, send) -> None:
        if isinstance(message, NewScene):
            scene = message.scene
            if scene is None:
                scene, hub.next_scene = hub.next_scene, hub.next_scene + 1
            await hub.run(game.new_scene, scene)
            await send({"type": "scene", "scene": scene, "prompt": game.session.prompt})
        elif isinstance(message, Prompt):
            await hub.run(game.set_prompt, message.text)
            await send({"type": "prompt", "prompt": message.text})
        elif isinstance(message, Record):
            if message.on and not game.recording:
                game.start_recording()
                await send({"type": "recording", "on": True})
            elif not message.on and game.recording:
                video, log = await hub.run(game.stop_recording, settings.record_dir, settings.fps,
                                           settings.record_scale)
                await send({"type": "recorded", "video": str(video) if video else None, "log": str(log)})

    async def read(ws: WebSocket, player: Player, action_dim: int, send) -> None:
        throttle = Throttle(MAX_MESSAGES_PER_SECOND, burst=MAX_MESSAGES_PER_SECOND // 4)
        while True:
            # a client sending faster than any hand waits here, and the socket pushes back on it: a flood costs the
            # event loop at most MAX_MESSAGES_PER_SECOND parses a second, whatever the client sends
            await asyncio.sleep(throttle.delay(time.monotonic()))
            received = await ws.receive()
            if received["type"] == "websocket.disconnect":
                return
            text = received.get("text")
            if text is None:
                await send({"type": "error", "message": "binary messages are not understood: send JSON text"})
                continue
            try:
                message = parse(text, action_dim)
            except BadMessage as err:
                await send({"type": "error", "message": str(err)})
                continue
            if isinstance(message, Action):
                player.action, player.seq = message.action, message.seq
            elif isinstance(message, Pause):
                player.paused = message.paused
            else:
                # the latest of each kind wins; a recording started and stopped within one frame is still written
                player.commands[(Record, message.on) if isinstance(message, Record) else type(message)] = message
            player.wake.set()

    return Starlette(routes=[Route("/", index), Route("/play.js", script), Route("/stats", stats),
                             WebSocketRoute("/ws", socket)],
                     middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))])


class Throttle:
    """At most `rate` events a second on average, in bursts of up to `burst`: `delay(now)` is how long to wait before
    the next one (a token bucket)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.interval, self.slack = 1.0 / rate, burst / rate
        self.due = -math.inf

    def delay(self, now: float) -> float:
        self.due = max(self.due, now - self.slack) + self.interval
        return max(0.0, self.due - now)


def allowed_origin(origin: str, host: str, settings: PlaySettings) -> bool:
    """May a page of `origin` open a stream on the server the browser calls `host`? Only the server's own page (the
    same host and port, however it is forwarded) and those `allow_origins` names: any other site open in the user's
    browser could otherwise play, record and read frames."""
    parsed = urlsplit(origin)
    return origin in settings.allow_origins or (parsed.scheme in ("http", "https") and parsed.netloc == host)
