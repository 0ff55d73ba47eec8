"""The `play` server's protocol, in process (Starlette's test client): a player greeted, streamed and answered,
garbage answered and ignored, players beyond the limit refused, a closed tab's stream freed, a recording written and
replayed exactly, foreign pages, rebound host names, paths and missing tokens refused. What only a real server
shows (pacing, the WebSocket size limit, Ctrl-C, a taken port) is `test_play_server.py`."""

import json
import time

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from lightning_aapt.cli import main
from lightning_aapt.cli.play.protocol import unpack_frame
from tests.helpers_play import play_app, playable_checkpoint

pytestmark = pytest.mark.smoke

BASE, WS = "http://127.0.0.1:8765", "ws://127.0.0.1:8765/ws"  # a name the server answers to (not "testserver")


@pytest.fixture
def ckpt(tmp_path):
    return playable_checkpoint(tmp_path / "tiny.ckpt")


def frames(ws, count: int) -> list[dict]:
    headers = []
    while len(headers) < count:
        message = ws.receive()
        if message.get("bytes") is not None:
            headers.append(unpack_frame(message["bytes"])[0])
    return headers


def text_reply(ws, kind: str) -> dict:
    for _ in range(100):
        message = ws.receive()
        if message.get("text") is not None and json.loads(message["text"])["type"] == kind:
            return json.loads(message["text"])
    raise AssertionError(f"no {kind} message")


def wait_for(client: TestClient, sessions: int) -> dict:
    """/stats once `sessions` players are streaming and no ended one's game is left in memory."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stats = client.get("/stats").json()
        if stats["sessions"] == stats["alive_sessions"] == sessions:
            return stats
        time.sleep(0.1)
    raise AssertionError(f"expected {sessions} sessions, none left behind; /stats says {stats}")


def test_a_player_is_greeted_streamed_and_every_bad_message_answered(ckpt, toy_data):
    with TestClient(play_app(ckpt, toy_data), base_url=BASE) as client, client.websocket_connect(WS) as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["fps"] == 8 and hello["action_dim"] == 2 and hello["scene"] == 0
        assert [h["index"] for h in frames(ws, 3)] == [0, 1, 2]
        for garbage, why in (("not json", "JSON"), ('{"type": "fly"}', "fly"),
                             ('{"type": "action", "action": [1], "seq": 1}', "2 finite numbers"),
                             (json.dumps({"type": "prompt", "text": "\ud800 hello"}), "lone surrogate"),
                             (json.dumps({"type": "prompt", "text": "line one\x00two"}), "control character")):
            ws.send_text(garbage)
            assert why in text_reply(ws, "error")["message"], garbage
        ws.send_bytes(b"\x00\x01")
        assert "binary" in text_reply(ws, "error")["message"]
        ws.send_text(json.dumps({"type": "action", "action": [1, 0], "seq": 7}))
        assert any(h["seq"] == 7 and h["action"] == [1.0, 0.0] for h in frames(ws, 3))  # still streaming, applied
        ws.send_text(json.dumps({"type": "prompt", "text": "a red circle bounces over a navy to plum background"}))
        assert text_reply(ws, "prompt")["prompt"].startswith("a red circle")


def test_players_beyond_the_limit_are_refused_and_a_closed_tabs_stream_is_freed(ckpt, toy_data):
    with TestClient(play_app(ckpt, toy_data, max_sessions=2), base_url=BASE) as client:
        with client.websocket_connect(WS) as one:
            assert one.receive_json()["scene"] == 0
            with client.websocket_connect(WS) as two:
                assert two.receive_json()["scene"] == 1  # each player its own scene
                frames(two, 2)
                with client.websocket_connect(WS) as three:
                    refusal = three.receive_json()
                    assert refusal["type"] == "error" and refusal["fatal"] and "full" in refusal["message"]
                both = wait_for(client, 2)
                assert both["cache_bytes"] > 0
            after = wait_for(client, 1)  # tab two closed mid-stream: its stream goes, the first keeps playing
            assert after["cache_bytes"] == both["cache_bytes"] / 2
            frames(one, 2)
        assert wait_for(client, 0)["cache_bytes"] == 0  # every game freed


def test_a_recording_is_written_and_replays_exactly_and_a_tab_closed_mid_recording_is_written_too(ckpt, toy_data,
                                                                                                   tmp_path):
    record_dir = tmp_path / "rec"
    with TestClient(play_app(ckpt, toy_data, record_dir=record_dir), base_url=BASE) as client:
        with client.websocket_connect(WS) as ws:
            ws.receive_json()
            frames(ws, 2)
            ws.send_text(json.dumps({"type": "record", "on": True}))
            assert text_reply(ws, "recording")["on"]
            ws.send_text(json.dumps({"type": "action", "action": [0, 1], "seq": 1}))
            frames(ws, 4)
            ws.send_text(json.dumps({"type": "record", "on": False}))
            recorded = text_reply(ws, "recorded")
        assert main(["play", "--ckpt", str(ckpt), "--data", str(toy_data), "--replay", recorded["log"]]) == 0
        with client.websocket_connect(WS) as ws:
            ws.receive_json()
            ws.send_text(json.dumps({"type": "record", "on": True}))
            frames(ws, 3)
        wait_for(client, 0)  # the tab closed mid-recording: the recording is written as its session ends
    assert sorted(p.suffix for p in record_dir.glob("play-*")) == [".json", ".json", ".mp4", ".mp4"]


def test_foreign_pages_rebound_hosts_stray_paths_and_missing_tokens_are_refused(ckpt, toy_data):
    title = "<img src=x onerror=alert(1)>"
    with TestClient(play_app(ckpt, toy_data, title=title), base_url=BASE) as client:
        page = client.get("/").text
        assert title not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
        with client.websocket_connect(WS, headers={"origin": BASE}) as own:  # the page's own origin
            assert own.receive_json()["type"] == "hello"
        with pytest.raises(WebSocketDisconnect) as refused, \
                client.websocket_connect(WS, headers={"origin": "http://evil.example"}):
            pass
        assert refused.value.code == 1008
        assert client.get("/stats", headers={"host": "evil.example:8765"}).status_code == 400  # DNS rebinding
        for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd", "/play.js/../../server.py"):
            assert client.get(path).status_code == 404, path  # four exact routes, no files served
    token = "a-token-of-sixteen-chars"
    with TestClient(play_app(ckpt, toy_data, token=token), base_url=BASE) as client:
        assert client.get("/").status_code == 403 and client.get("/stats").status_code == 403
        assert client.get(f"/?token={token}").status_code == 200 and client.get("/?token=guess").status_code == 403
        with pytest.raises(WebSocketDisconnect), client.websocket_connect(WS):
            pass
        with client.websocket_connect(f"{WS}?token={token}") as ws:
            assert ws.receive_json()["type"] == "hello"
