"""A playable checkpoint without training: a random causal tiny backbone with the tiny toy dataset's shapes,
written as a plain backbone checkpoint with the stage settings `play` reads."""

from __future__ import annotations

from pathlib import Path

from lightning_aapt.backbone import BackboneConfig, CausalVideoDiT
from lightning_aapt.stages.checkpoints import save_backbone
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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PlayServer:
    """`python -m lightning_aapt play` in a subprocess (as a user runs it), stopped on exit."""

    def __init__(self, ckpt: Path, data: Path, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.args = ["play", "--ckpt", str(ckpt), "--data", str(data), "--port", str(self.port), *args]
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PlayServer:
        import os
        import subprocess
        import sys
        import time
        import urllib.error
        import urllib.request

        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "lightning_aapt", *self.args], cwd=root, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"play exited ({self.process.returncode}):\n{self.process.stdout.read()}")
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

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.output, _ = self.process.communicate(timeout=10)
        except Exception:
            self.process.kill()
            self.output, _ = self.process.communicate()
