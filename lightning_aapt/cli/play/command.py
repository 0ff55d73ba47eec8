"""`python -m lightning_aapt play`: steer a checkpoint's generated world live from the browser, the world's truth
beside it; or replay a recorded session exactly (`--replay`)."""

from __future__ import annotations

import errno
import os
import secrets
import socket
import sys
import tempfile
from pathlib import Path

from lightning_aapt.cli.signature import run_function
from lightning_aapt.errors import ConfigError, check_at_least


def play(ckpt: Path, data: Path = Path("data/toy32"), host: str = "127.0.0.1", port: int = 8765,
         steps: int | None = None, context: int | None = None, seed: int = 0, scene: int = 0, max_sessions: int = 4,
         record_dir: Path = Path("runs/play"), device: str = "cpu", replay: Path | None = None,
         out: Path | None = None, overwrite: bool = False, allow_origin: list[str] | None = None,
         token: str | None = None) -> int:
    """Serve a page where the arrow keys (or WASD, or the buttons) steer the agent of a checkpoint's generated toy
    world, frame by frame at the world's frame rate, with the world re-rendered for the same actions beside it.

    Args:
        ckpt: a causal stage checkpoint (stage 3 plays at 1 step per frame; stages 1-2 at their sample_steps).
        data: the toy-world dataset the checkpoint was trained on (its world, codec and text encoder).
        host: the address to serve on (127.0.0.1: this machine only; any other needs a token).
        port: the port to serve on (0: any free one, printed).
        steps: network evaluations per frame (default: the checkpoint's sample_steps).
        context: real frames a scene starts from (default: the checkpoint's context_frames).
        seed: noise seed of every stream (a recording replays with it).
        scene: the first player's scene; each new scene or player takes the next.
        max_sessions: players at once (browser tabs); the next is refused with a message.
        record_dir: where the record button writes MP4 + JSON.
        device: cpu or cuda.
        replay: a recording's JSON: make its frames again instead of serving, and check they are identical.
        out: with --replay, write the replayed frames to this .mp4/.gif.
        overwrite: replace an existing --out.
        allow_origin: other pages (scheme://host:port) that may open a stream, beside the server's own.
        token: required in the page's URL (?token=...) when --host is not a loopback address (default: a random
            one, printed with the URL).
    """
    import torch

    from lightning_aapt.checkpoints import load_generator
    from lightning_aapt.cli.play.game import Game, PlayLog, frames_hash
    from lightning_aapt.cli.play.game import replay as replay_log
    from lightning_aapt.data import dataset_codec, read_manifest
    from lightning_aapt.inference.session import InteractiveSession
    from lightning_aapt.world.dataset import spec_from_manifest
    from lightning_aapt.world.live import LiveWorld

    check_settings(port, steps, context, scene, max_sessions, device)
    if replay is None:
        check_record_dir(record_dir)
    manifest = read_manifest(data, flag="--data")
    if manifest.toy_world is None:
        raise ConfigError(f"--data {data}: play streams a toy-world dataset (python -m lightning_aapt prepare "
                         "toy-world); other datasets have no world to steer or re-render yet")
    spec = spec_from_manifest(data)
    shapes = manifest.shapes
    generator = load_generator(ckpt, "--ckpt")
    generator.check_streams("play")
    generator.check_data(shapes, f"--data {data}")
    model = generator.model.eval().to(device)
    codec = dataset_codec(data)
    shift = generator.sampling.shift
    steps = steps or generator.sampling.steps
    context = context or generator.sampling.context_frames
    encoder = spec.text_encoder()

    def session(steps: int, shift: float, seed: int) -> InteractiveSession:
        return InteractiveSession(model, codec, encoder, steps=steps, shift=shift, seed=seed)

    if replay is not None:
        if out is not None:
            from lightning_aapt.files import check_output

            check_output(out, "--out", overwrite, (".gif", ".mp4"), replay=replay, ckpt=ckpt)
        log = PlayLog.read(replay, spec.world.action_dim)
        frames = replay_log(log, session(log.steps, log.shift, log.seed), LiveWorld(spec.world))
        same = frames_hash(frames) == log.frames_sha256
        if out is not None:
            import numpy as np

            from lightning_aapt.video import write_video

            write_video(out, np.concatenate(frames), fps=spec.fps, scale=8)
        print(f"replayed {replay}: {len(frames)} frames, {'identical to' if same else 'DIFFERENT from'} the recording"
              + (f"; wrote {out}" if out is not None else ""))
        return 0 if same else 1

    loopback = host in LOOPBACK
    if not loopback:
        token = token or secrets.token_urlsafe(16)
        print(f"warning: --host {host} lets other machines reach this server; each needs the token in the URL "
              "printed below (no other authentication, and frames travel unencrypted)", file=sys.stderr)
    listener = bind(host, port)
    port = listener.getsockname()[1]  # the one it got, for --port 0
    from lightning_aapt.cli.play.server import Hub, PlaySettings, create_app

    def make_game(first: int) -> Game:
        return Game(session(steps, shift, seed), LiveWorld(spec.world), context, first)

    settings = PlaySettings(fps=spec.fps, max_sessions=max_sessions, record_dir=record_dir, first_scene=scene,
                            title=f"{ckpt} · {steps} step{'s' if steps > 1 else ''} per frame",
                            allowed_hosts=tuple(dict.fromkeys([*LOOPBACK, host] if host not in WILDCARD else ["*"])),
                            allow_origins=tuple(allow_origin or ()), token=token)
    torch.set_grad_enabled(False)
    shown = f"[{host}]" if ":" in host else host
    serve(create_app(Hub(make_game, settings)), listener,
          f"http://{shown}:{port}/" + (f"?token={token}" if token else ""))
    return 0


LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::")  # every address of the machine: any Host header may be right


def check_settings(port: int, steps: int | None, context: int | None, scene: int, max_sessions: int,
                   device: str) -> None:
    """Every start-up setting, before a model is loaded or a port taken."""
    import torch

    own = " (leave it out for the checkpoint's own)"
    check_at_least(("--steps", steps, 1), ("--context", context, 1), ("--scene", scene, 0),
                   ("--max_sessions", max_sessions, 1), why={"--steps": own, "--context": own})
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: must be in 0-65535 (0: any free port, printed)")
    try:
        kind = torch.device(device).type
    except RuntimeError as err:
        raise ConfigError(f"--device {device}: not a device ({err}); expected cpu or cuda") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: this machine has no CUDA GPU torch can use; use --device cpu")


def check_record_dir(record_dir: Path) -> None:
    """The record button must not lose a recording to a folder it cannot write: checked before the server starts,
    without making the folder (the first recording does)."""
    existing = next(p for p in (record_dir, *record_dir.absolute().parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        with tempfile.NamedTemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ConfigError(f"--record_dir {record_dir}: cannot write there ({err.strerror}); name a writable "
                          "folder") from None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a clear error naming the host that does not resolve or is not this
    machine's, or the port that is taken."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except socket.gaierror as err:
        listener.close()
        raise ConfigError(f"--host {host}: not a name or address this machine can resolve ({err.strerror}); the "
                          "default 127.0.0.1 serves this machine only") from None
    except OSError as err:
        listener.close()
        if err.errno == errno.EADDRINUSE:
            raise ConfigError(f"--port {port}: cannot listen on {host}:{port} ({err.strerror}); another program has "
                              "it: pick another with --port") from None
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({err.strerror})") from None
    listener.listen(64)
    return listener


def serve(app, listener: socket.socket, url: str) -> None:
    import gc

    import uvicorn

    # Everything loaded so far (torch, the model, about 470,000 objects) lives as long as the server: frozen out of
    # the collector's reach, a full collection (`/stats`, at most once a second) scans only what players made since,
    # in well under a millisecond instead of 270 ms that stalled every player's stream (6.7 of 8 fps with /stats
    # polled, measured on 2 cores).
    gc.collect()
    gc.freeze()
    # a message larger than the protocol allows is refused by the WebSocket layer before it is read into memory
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws_max_size=1 << 16))
    print(f"playing at {url} (Ctrl-C stops)", flush=True)
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:  # uvicorn raises it again once every session has ended (recordings written)
        print("stopped", flush=True)


def main(argv: list[str]) -> int:
    return run_function(play, argv, "play")
