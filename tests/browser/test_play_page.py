"""The play page in a real browser (headless Chromium, Playwright): held keys steer the stream, the frame rate holds
the world's pace, the input-to-frame latency is measured end to end, the prompt switches, scenes restart, two tabs
play at once, garbage over the socket is answered and ignored.

By default the checkpoint is a random tiny backbone (the page's mechanics). With LIGHTNING_AAPT_PLAY_CKPT (and
LIGHTNING_AAPT_PLAY_DATA, default data/toy32) set to a trained causal checkpoint, the test also checks that the
generated agent goes where the keys send it. LIGHTNING_AAPT_PLAY_SHOT=FILE.png saves a screenshot of the page.
"""

import json
import os
import re
import shutil
import statistics
import time
from pathlib import Path

import pytest

from tests.helpers_play import PlayServer, playable_checkpoint

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
HOLDS = [("ArrowRight", 0.6), ("ArrowDown", 0.5), ("ArrowLeft", 0.7), ("ArrowUp", 0.45), ("ArrowRight", 0.55),
         ("ArrowUp", 0.65), ("ArrowLeft", 0.5), ("ArrowDown", 0.6)]  # 4.55 s, played three times
PAUSE = 0.2  # seconds between holds: longer than a frame period at the world's 8 fps
DIRECTION = {"ArrowRight": (1, 0), "ArrowLeft": (-1, 0), "ArrowUp": (0, -1), "ArrowDown": (0, 1)}


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("no Chromium: apt-get install chromium")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def served(toy_data, tmp_path_factory):
    trained = os.environ.get("LIGHTNING_AAPT_PLAY_CKPT")
    if trained:
        ckpt, data = Path(trained), Path(os.environ.get("LIGHTNING_AAPT_PLAY_DATA", "data/toy32"))
    else:
        ckpt, data = playable_checkpoint(tmp_path_factory.mktemp("play") / "tiny.ckpt"), toy_data
    with PlayServer(ckpt, data) as server:
        yield server, bool(trained)


def stats(page) -> dict:
    return page.evaluate("() => window.playStats")


def wait_for(page, predicate: str, timeout: float = 30) -> None:
    page.wait_for_function(predicate, timeout=timeout * 1000)


def wait_for_sessions(server, sessions: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while server.stats()["sessions"] != sessions and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.fixture
def page(browser):
    """A tab, closed after the test even when it fails (an open tab would hold a session for the next test)."""
    tab = browser.new_page()
    yield tab
    tab.close()


def test_held_keys_steer_at_the_worlds_pace(page, served):
    server, trained = served
    page.goto(server.url)
    wait_for(page, "() => window.playStats.frames >= 8")
    start = stats(page)["frames"]
    holds = []
    began = time.monotonic()
    for key, seconds in HOLDS * 3:
        before = stats(page)["frames"]
        page.keyboard.down(key)
        time.sleep(seconds)
        page.keyboard.up(key)
        holds.append((key, before, stats(page)["frames"]))
        time.sleep(PAUSE)
    played = time.monotonic() - began
    # every input (a press and a release per hold) is either measured by the first frame made with it or superseded
    # by a newer one before any frame was (the server plays the latest action); a pause longer than a frame period
    # between holds leaves superseding to a busy machine, and it must stay rare
    sent = 2 * len(HOLDS * 3)
    wait_for(page, f"() => window.playStats.latencies.length + window.playStats.superseded >= {sent}")
    assert stats(page)["superseded"] <= 0.1 * sent
    s = stats(page)
    arrivals = s["arrivals"][start:]
    fps = (len(arrivals) - 1) / ((arrivals[-1] - arrivals[0]) / 1000)
    latencies = sorted(s["latencies"])
    p50 = statistics.median(latencies)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    header = s["header"]
    print(f"\nplay over {played:.1f} s: {len(arrivals)} frames at {fps:.2f} fps (world: {s['hello']['fps']}), "
          f"{header['late']} late ticks; input-to-frame latency over {len(latencies)} inputs "
          f"({s['superseded']} superseded): p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
          f"max {latencies[-1]:.0f} ms; model {header['model_ms']:.1f} ms, decode "
          f"{header['decode_ms']:.2f} ms per frame; mean agent error {header['mean_agent_error']:.2f} px; objects kept "
          f"(mean) {header['mean_objects_kept']}")
    if out := os.environ.get("LIGHTNING_AAPT_PLAY_MEASURED"):
        Path(out).write_text(json.dumps({"seconds": played, "frames": len(arrivals), "fps": fps,
                                         "late": header["late"], "inputs": len(latencies),
                                         "superseded": s["superseded"], "p50_ms": p50,
                                         "p95_ms": p95, "max_ms": latencies[-1],
                                         "mean_agent_error_px": header["mean_agent_error"],
                                         "mean_objects_kept": header["mean_objects_kept"]}, indent=1))
    if shot := os.environ.get("LIGHTNING_AAPT_PLAY_SHOT"):
        page.screenshot(path=shot)
    # the world's pace held: no frame dropped from the rate; a tick more than a quarter period late (a busy machine)
    # is counted, and must stay rare
    assert played >= 10 and fps >= 0.97 * s["hello"]["fps"] and header["late"] <= 0.02 * len(arrivals)
    assert p95 <= 150
    # the page shows the objects kept beside the agent error: a share of the objects the world shows now
    kept = header["mean_objects_kept"]
    assert kept is None or 0 <= kept <= 1
    assert re.fullmatch(r"(\d+%|–) / (\d+%|–)", page.inner_text("#objects"))
    if trained:  # the generated agent goes where the keys send it, and stays with the truth
        # per steered frame, the generated agent's step against the true one (the action as the world applies it,
        # walls included)
        along = []
        for a, h in zip(s["headers"], s["headers"][1:], strict=False):
            true_step = [q - p for p, q in zip(a["true_agent"], h["true_agent"], strict=True)]
            if a["agent"] and h["agent"] and any(h["action"]) and sum(d * d for d in true_step) > 0.25:
                step = [q - p for p, q in zip(a["agent"], h["agent"], strict=True)]
                along.append(sum(x * y for x, y in zip(step, true_step, strict=True)) / sum(d * d for d in true_step)
                             ** 0.5)
        following = sum(d > 0 for d in along) / len(along)
        print(f"the generated agent moved the commanded way in {following:.0%} of {len(along)} steered frames "
              f"(mean {statistics.mean(along):.2f} px per frame along the true step)")
        # within 2 px per 16 px of frame width on average (the quick start's 32-px stage 3 read 14.1 of 4 over 21 s
        # of held keys: it does not pass; the 16-px reference experiment's read 0.54 of 2)
        assert following >= 0.8 and header["mean_agent_error"] <= 2.0 * s["hello"]["size"] / 16


def test_prompt_scene_two_tabs_and_garbage(browser, page, served):
    server, _ = served
    wait_for_sessions(server, 0)  # the tabs of earlier tests are closed and freed
    page.goto(server.url)
    wait_for(page, "() => window.playStats.frames >= 3")
    page.fill("#prompt", "a red circle bounces over a navy to plum background while a white agent moves")
    page.click("#send-prompt")
    wait_for(page, "() => window.playStats.messages.some(m => m.type === 'prompt')")
    page.click("#scene")
    wait_for(page, "() => window.playStats.messages.some(m => m.type === 'scene')")
    frames = stats(page)["frames"]
    wait_for(page, f"() => window.playStats.frames >= {frames + 4}")  # the new scene streams

    other = browser.new_page()
    other.goto(server.url)
    wait_for(other, "() => window.playStats.frames >= 3")
    assert server.stats()["sessions"] == 2
    assert stats(other)["hello"]["scene"] != stats(page)["hello"]["scene"]  # each tab its own stream
    other.close()
    wait_for_sessions(server, 1)
    assert server.stats()["sessions"] == server.stats()["alive_sessions"] == 1

    reply = page.evaluate("""() => new Promise((resolve) => {
        const ws = new WebSocket(`ws://${location.host}/ws`);
        const errors = [];
        ws.onmessage = (e) => {
            if (typeof e.data !== "string") return;
            const m = JSON.parse(e.data);
            if (m.type === "hello") { ws.send("{{{ garbage"); ws.send(JSON.stringify({type: "warp", to: 9})); }
            if (m.type !== "error") return;
            errors.push(m.message);
            if (errors.length === 2) { ws.close(); resolve(errors); }
        };
    })""")
    assert "not JSON" in reply[0] and "unknown message type 'warp'" in reply[1]
    frames = stats(page)["frames"]
    wait_for(page, f"() => window.playStats.frames >= {frames + 4}")  # the first tab never noticed
