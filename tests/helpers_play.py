"""A playable checkpoint without training: a random causal tiny backbone with the tiny toy dataset's shapes,
written as a plain backbone checkpoint with the stage settings `play` reads."""

from __future__ import annotations

from pathlib import Path

from lightning_aapt.backbone import BackboneConfig, CausalVideoDiT
from lightning_aapt.checkpoints import save_backbone
from tests.helpers import randomize
from tests.helpers_cli import TINY_BACKBONE

PLAYABLE = BackboneConfig(**TINY_BACKBONE, latent_channels=48, text_dim=64, control_dim=2, window_frames=4,
                          sink_frames=1)


def playable_model(seed: int = 0) -> CausalVideoDiT:
    return randomize(CausalVideoDiT(PLAYABLE), seed=seed, std=0.05).eval()


def playable_checkpoint(path: Path, seed: int = 0) -> Path:
    save_backbone(playable_model(seed), path,
                  hyper_parameters={"sample_steps": 1, "context_frames": 2, "timesteps": {"shift": 1.0}})
    return path


class PlayServer:
    """`python -m lightning_aapt play` in a subprocess (as a user runs it), stopped on exit. By default on
    `--port 0`: the server takes a free port and prints it (`playing at http://127.0.0.1:PORT/`), which is read."""

    def __init__(self, ckpt: Path, data: Path, *args: str, port: int = 0) -> None:
        self.port = port
        self.args = ["play", "--ckpt", str(ckpt), "--data", str(data), "--port", str(port), *args]
        self.lines: list[str] = []

    def __enter__(self) -> PlayServer:
        import os
        import subprocess
        import sys
        import threading
        import time
        import urllib.error
        import urllib.request

        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "lightning_aapt", *self.args], cwd=root, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(self.process.stdout.readline, "")),
                                       daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.reader.join(5)
                raise AssertionError(f"play exited ({self.process.returncode}):\n{self.output}")
            served = [line for line in list(self.lines) if line.startswith("playing at http://")]
            if not served:
                time.sleep(0.3)
                continue
            url = served[0].split()[2]  # http://HOST:PORT/ or, beyond loopback, http://HOST:PORT/?token=...
            self.port = int(url.split("//")[1].split("/")[0].rsplit(":", 1)[1])
            assert self.port > 0, served[0]  # --port 0: the port it got, not 0
            self.url = f"http://127.0.0.1:{self.port}"
            try:
                urllib.request.urlopen(self.url + "/stats", timeout=1).read()
                return self
            except urllib.error.HTTPError:  # it answers (a server that needs its token refuses /stats without it)
                return self
            except OSError:
                time.sleep(0.3)
        self.__exit__()
        raise AssertionError("play did not start within 120 s")

    def stats(self) -> dict:
        import json
        import urllib.request

        return json.loads(urllib.request.urlopen(self.url + "/stats", timeout=5).read())

    @property
    def output(self) -> str:
        """Everything the server printed so far (all of it once stopped)."""
        return "".join(self.lines)

    def __exit__(self, *exc) -> None:
        import subprocess

        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(10)


def play_app(ckpt: Path, data: Path, **settings):
    """The `play` server's app in this process (Starlette's test client drives it), built from the same pieces as
    the command: the checkpoint's generator and sampling, the dataset's world, codec and text encoder; `settings`
    are `PlaySettings` fields (the world's fps, and the record folder under the checkpoint's, unless given)."""
    from lightning_aapt.checkpoints import load_generator
    from lightning_aapt.cli.play.game import Game
    from lightning_aapt.cli.play.server import Hub, PlaySettings, create_app
    from lightning_aapt.data import dataset_codec
    from lightning_aapt.inference.session import InteractiveSession
    from lightning_aapt.world.dataset import spec_from_manifest
    from lightning_aapt.world.live import LiveWorld

    generator, spec, codec = load_generator(ckpt), spec_from_manifest(data), dataset_codec(data)
    model, sampling = generator.model.eval(), generator.sampling

    def make_game(scene: int) -> Game:
        session = InteractiveSession(model, codec, spec.text_encoder(), steps=sampling.steps, shift=sampling.shift)
        return Game(session, LiveWorld(spec.world), sampling.context_frames, scene)

    settings = {"fps": spec.fps, "record_dir": ckpt.parent / "rec", **settings}
    return create_app(Hub(make_game, PlaySettings(**settings)))
