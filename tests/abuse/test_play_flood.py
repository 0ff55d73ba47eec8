"""Hostile play clients against a real server, for 30 s: one floods prompts as fast as it can, another polls /stats
five times a second; a third player must keep its frame rate and the server its memory."""

import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.sync.client import connect

from lightning_aapt.cli.play.protocol import unpack_frame
from tests.helpers_play import PlayServer, playable_checkpoint

pytestmark = pytest.mark.abuse

SECONDS = 30
FLOOD = """
import json, sys, time
from websockets.sync.client import connect
sent, end = 0, time.monotonic() + float(sys.argv[2])
text = json.dumps({"type": "prompt", "text": "a red circle bounces over a navy to plum background"})
while time.monotonic() < end:  # it never reads what the server sends: dropped, it comes straight back
    try:
        with connect(sys.argv[1]) as ws:
            while time.monotonic() < end:
                ws.send(text)
                sent += 1
    except Exception:
        time.sleep(0.1)
print(sent)
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_prompt_flood_and_stats_polling_starve_no_player(toy_data, tmp_path):
    ckpt = playable_checkpoint(tmp_path / "tiny.ckpt")
    with PlayServer(ckpt, toy_data, "--record_dir", str(tmp_path / "rec")) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        stop = threading.Event()
        sent = {"polls": 0}

        # the flood from its own process, as fast as it can send (in this one it would starve the measuring player)
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, url, str(SECONDS + 5)], stdout=subprocess.PIPE,
                                 text=True)

        def poll() -> None:
            while not stop.is_set():
                urllib.request.urlopen(server.url + "/stats", timeout=5).read()
                sent["polls"] += 1
                time.sleep(0.2)

        with connect(url) as player:
            fps = json.loads(player.recv(timeout=30))["fps"]
            for _ in range(int(fps)):  # warmed up: the first second of frames
                while not isinstance(player.recv(timeout=10), bytes):
                    pass
            before = rss_mib(server.process.pid)
            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            frames, start = 0, time.monotonic()
            while time.monotonic() - start < SECONDS:
                message = player.recv(timeout=10)
                if isinstance(message, bytes):
                    unpack_frame(message)
                    frames += 1
            rate = frames / (time.monotonic() - start)
            grown = rss_mib(server.process.pid) - before
            stop.set()
            poller.join(timeout=10)
            sent["prompts"] = int(flood.communicate(timeout=30)[0])
        print(f"player {rate:.2f} fps of {fps}; {sent['prompts']} prompts and {sent['polls']} /stats polls in "
              f"{SECONDS} s; server memory +{grown:.1f} MiB")
        assert sent["prompts"] > 1000 and sent["polls"] >= 3 * SECONDS  # about five a second
        assert rate >= 7 / 8 * fps, f"{rate:.2f} fps"
        assert grown < 100, f"{grown:.1f} MiB"
    assert "Traceback" not in server.output, server.output
