"""The `play` server as a user runs it, in a subprocess: what only a real server shows (the protocol is tested in
process, `test_play_protocol.py`)."""

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


def test_a_real_server_paces_limits_message_size_names_a_taken_port_and_writes_a_recording_on_ctrl_c(toy_data,
                                                                                                       tmp_path):
    """`play` as a user runs it (a subprocess on uvicorn): frames at the world's pace, a 1 MiB message refused by
    the WebSocket layer before it is read, a taken port named, a recording in progress written when the server is
    stopped with Ctrl-C; beyond loopback, a warning and a token in the printed URL. The protocol itself is tested in
    process (`test_play_protocol.py`)."""
    import signal
    import urllib.error
    import urllib.request

    from websockets.exceptions import ConnectionClosed

    odd = tmp_path / "<img src=x onerror=alert(1)>"  # the checkpoint's path is the page's title: escaped
    odd.mkdir()
    ckpt = playable_checkpoint(odd / "tiny.ckpt")
    with PlayServer(ckpt, toy_data, "--record_dir", str(tmp_path / "rec")) as server:
        page = urllib.request.urlopen(server.url + "/", timeout=5).read().decode()
        assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
        with connect(f"ws://127.0.0.1:{server.port}/ws", origin=server.url) as big:
            assert json.loads(big.recv(timeout=30))["type"] == "hello"
            big.send("x" * (1 << 20))  # refused by the WebSocket layer before it is read into memory
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    big.recv(timeout=10)
            assert closed.value.rcvd.code == 1009  # message too big
        with pytest.raises(ConfigError, match=f"--port {server.port}: cannot listen"):
            main(["play", "--ckpt", str(ckpt), "--data", str(toy_data), "--port", str(server.port)])
        with connect(f"ws://127.0.0.1:{server.port}/ws", origin=server.url) as one:
            assert json.loads(one.recv(timeout=30))["type"] == "hello"
            start = time.monotonic()
            first = frames(one, 9)
            assert time.monotonic() - start > 0.9  # never faster than 8 frames per second (the first at once)
            assert [h["index"] for h in first] == list(range(9)) and first[-1]["late"] == 0
            one.send(json.dumps({"type": "record", "on": True}))
            frames(one, 4)
            server.process.send_signal(signal.SIGINT)
            server.process.wait(timeout=30)
    assert [p.suffix for p in sorted((tmp_path / "rec").glob("play-*"))] == [".json", ".mp4"]
    assert "Traceback" not in server.output and "Error" not in server.output, server.output  # nothing went wrong
    with PlayServer(ckpt, toy_data, "--host", "0.0.0.0", "--record_dir", str(tmp_path / "rec")) as server, \
            pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(server.url + "/", timeout=5)  # no token
    assert "warning: --host 0.0.0.0 lets other machines reach this server" in server.output
    token = server.output.split("?token=")[1].split()[0]
    assert len(token) >= 16
