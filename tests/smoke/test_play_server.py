"""The `play` server as a client sees it, without a browser: frames at the world's pace, garbage answered and
ignored, several players each with their own stream up to the limit, a closed tab's stream freed, a taken port
named."""

import json
import time

import pytest
from websockets.sync.client import connect

from lightning_aapt.cli import main
from lightning_aapt.cli.play.protocol import unpack_frame
from lightning_aapt.errors import ConfigError
from tests.helpers_play import PlayServer, playable_checkpoint

pytestmark = pytest.mark.smoke


def frames(ws, count: int) -> list[dict]:
    headers = []
    while len(headers) < count:
        message = ws.recv(timeout=10)
        if isinstance(message, bytes):
            headers.append(unpack_frame(message)[0])
    return headers


def text_reply(ws, kind: str) -> dict:
    for _ in range(100):
        message = ws.recv(timeout=10)
        if isinstance(message, str) and json.loads(message)["type"] == kind:
            return json.loads(message)
    raise AssertionError(f"no {kind} message")


def test_players_garbage_and_closed_tabs(toy_data, tmp_path):
    ckpt = playable_checkpoint(tmp_path / "tiny.ckpt")
    with PlayServer(ckpt, toy_data, "--max_sessions", "2", "--record_dir", str(tmp_path / "rec")) as server:
        base = server.stats()
        assert base["sessions"] == 0
        with connect(f"ws://127.0.0.1:{server.port}/ws") as one:
            hello = json.loads(one.recv(timeout=30))
            assert hello["type"] == "hello" and hello["fps"] == 8 and hello["action_dim"] == 2
            start = time.monotonic()
            first = frames(one, 9)
            assert time.monotonic() - start > 0.9  # never faster than 8 frames per second (the first at once)
            assert [h["index"] for h in first] == list(range(9)) and first[-1]["late"] == 0
            for garbage in ["not json", '{"type": "fly"}', '{"type": "action", "action": [1], "seq": 1}']:
                one.send(garbage)
                assert text_reply(one, "error")["type"] == "error"
            one.send(b"\x00\x01")
            assert "binary" in text_reply(one, "error")["message"]
            one.send(json.dumps({"type": "action", "action": [1, 0], "seq": 7}))
            assert any(h["seq"] == 7 for h in frames(one, 3))  # still streaming, the action applied
            one.send(json.dumps({"type": "prompt", "text": "a red circle bounces over a navy to plum background"}))
            assert text_reply(one, "prompt")["prompt"].startswith("a red circle")
            with connect(f"ws://127.0.0.1:{server.port}/ws") as two:
                assert json.loads(two.recv(timeout=30))["type"] == "hello"
                frames(two, 2)
                with connect(f"ws://127.0.0.1:{server.port}/ws") as three:  # over --max_sessions
                    refusal = json.loads(three.recv(timeout=30))
                    assert refusal["type"] == "error" and "full" in refusal["message"]
                both = server.stats()
                assert both["sessions"] == 2 and both["cache_bytes"] > 0
            time.sleep(1.0)  # tab two closed mid-stream: its stream goes, the first keeps playing
            after = server.stats()
            assert after["sessions"] == after["alive_sessions"] == 1 and after["cache_bytes"] == both["cache_bytes"] / 2
            frames(one, 2)
            one.send(json.dumps({"type": "record", "on": True}))
            frames(one, 4)
            one.send(json.dumps({"type": "record", "on": False}))
            recorded = text_reply(one, "recorded")
        time.sleep(1.0)
        assert server.stats() == {**base, "alive_sessions": 0}
        # the recording replays exactly from its log
        assert main(["play", "--ckpt", str(ckpt), "--data", str(toy_data), "--replay", recorded["log"]]) == 0

        # a taken port is named
        with pytest.raises(ConfigError, match=f"--port {server.port}: cannot listen"):
            main(["play", "--ckpt", str(ckpt), "--data", str(toy_data), "--port", str(server.port)])
    assert "Traceback" not in server.output and "Error" not in server.output, server.output  # nothing went wrong


def test_hostile_clients_and_pages_end_nothing(toy_data, tmp_path):
    """A lone surrogate or a control character in a prompt is answered and ignored; a page of another site, a
    rebound host name, or a missing token where one is needed is refused; the checkpoint path is escaped."""
    import urllib.error
    import urllib.request

    from websockets.exceptions import ConnectionClosed, InvalidStatus

    odd = tmp_path / "<img src=x onerror=alert(1)>"
    odd.mkdir()
    ckpt = playable_checkpoint(odd / "tiny.ckpt")
    with PlayServer(ckpt, toy_data, "--record_dir", str(tmp_path / "rec")) as server:
        page = urllib.request.urlopen(server.url + "/", timeout=5).read().decode()
        assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
        with connect(f"ws://127.0.0.1:{server.port}/ws", origin=server.url) as one:  # the page's own origin
            assert json.loads(one.recv(timeout=30))["type"] == "hello"
            for text, why in (("\ud800 hello", "lone surrogate"), ("line one\x00two", "control character")):
                one.send(json.dumps({"type": "prompt", "text": text}))
                assert why in text_reply(one, "error")["message"]
            frames(one, 3)  # still streaming
            one.send(json.dumps({"type": "record", "on": True}))
            frames(one, 3)
        time.sleep(1.0)  # the tab closed mid-recording: the recording is written, not lost
        assert [p.suffix for p in sorted((tmp_path / "rec").glob("play-*"))] == [".json", ".mp4"]
        with pytest.raises(InvalidStatus, match="403"):
            connect(f"ws://127.0.0.1:{server.port}/ws", origin="http://evil.example")
        rebound = urllib.request.Request(server.url + "/stats", headers={"Host": f"evil.example:{server.port}"})
        with pytest.raises(urllib.error.HTTPError, match="400"):
            urllib.request.urlopen(rebound, timeout=5)
        for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd", "/play.js/../../server.py"):
            with pytest.raises(urllib.error.HTTPError, match="404"):  # four exact routes, no files served
                urllib.request.urlopen(server.url + path, timeout=5)
        with connect(f"ws://127.0.0.1:{server.port}/ws", origin=server.url) as big:
            assert json.loads(big.recv(timeout=30))["type"] == "hello"
            big.send("x" * (1 << 20))  # refused by the WebSocket layer before it is read into memory
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    big.recv(timeout=10)
            assert closed.value.rcvd.code == 1009  # message too big
    assert "Traceback" not in server.output, server.output
    with PlayServer(ckpt, toy_data, "--host", "0.0.0.0", "--record_dir", str(tmp_path / "rec")) as server, \
            pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(server.url + "/", timeout=5)  # no token
    assert "warning: --host 0.0.0.0 lets other machines reach this server" in server.output
    token = server.output.split("?token=")[1].split()[0]
    assert len(token) >= 16


def test_a_recording_in_progress_is_written_when_the_server_is_stopped(toy_data, tmp_path):
    """Ctrl-C on the server while a player records: the recording is written as the session ends, not lost."""
    import signal

    ckpt = playable_checkpoint(tmp_path / "tiny.ckpt")
    with PlayServer(ckpt, toy_data, "--record_dir", str(tmp_path / "rec")) as server, \
            connect(f"ws://127.0.0.1:{server.port}/ws", origin=server.url) as one:
        assert json.loads(one.recv(timeout=30))["type"] == "hello"
        one.send(json.dumps({"type": "record", "on": True}))
        frames(one, 4)
        server.process.send_signal(signal.SIGINT)
        server.process.wait(timeout=30)
    assert [p.suffix for p in sorted((tmp_path / "rec").glob("play-*"))] == [".json", ".mp4"]
    assert "Traceback" not in server.output, server.output
