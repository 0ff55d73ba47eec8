"""The `play` page's WebSocket protocol: what a browser may send (JSON text, checked field by field; anything else is
a `BadMessage` naming what was wrong) and how a frame goes back (one binary message).

Browser -> server (text, JSON):
    {"type": "action", "action": [ax, ay], "seq": n}   the held keys as an action in [-1, 1]^2; n counts inputs
    {"type": "new_scene", "scene": s | null}          a new scene (null: the next one)
    {"type": "prompt", "text": "..."}                 switch the prompt mid-stream
    {"type": "pause", "paused": true | false}
    {"type": "record", "on": true | false}            start / stop recording (stopping writes MP4 + JSON)
Server -> browser:
    text {"type": "hello" | "scene" | "prompt" | "recorded" | "error", ...}
    binary: 4-byte big-endian header length, the header (JSON: "type": "frame", the frame's numbers, "seq" of the
    latest input applied, "images": byte lengths), then the PNG images (the generated frames, then the truth).
"""

from __future__ import annotations

import io
import json
import math
import struct
import unicodedata
from dataclasses import dataclass

import numpy as np
from PIL import Image

MAX_MESSAGE = 4096  # characters of one message
MAX_PROMPT = 1000  # characters of a prompt


class BadMessage(ValueError):
    """A message the server does not understand; answered with an error and ignored."""


@dataclass(frozen=True)
class Action:
    action: tuple[float, ...]
    seq: int


@dataclass(frozen=True)
class NewScene:
    scene: int | None


@dataclass(frozen=True)
class Prompt:
    text: str


@dataclass(frozen=True)
class Pause:
    paused: bool


@dataclass(frozen=True)
class Record:
    on: bool


Message = Action | NewScene | Prompt | Pause | Record


def parse(text: str, action_dim: int) -> Message:
    """One browser message, checked; raises `BadMessage` naming the problem."""
    if len(text) > MAX_MESSAGE:
        raise BadMessage(f"message of {len(text)} characters: at most {MAX_MESSAGE}")
    try:
        data = json.loads(text)
    except ValueError as err:
        raise BadMessage(f"not JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise BadMessage('expected a JSON object with a "type"')
    kind = data["type"]
    if kind == "action":
        action, seq = data.get("action"), data.get("seq")
        if (not isinstance(action, list) or len(action) != action_dim
                or not all(isinstance(a, int | float) and not isinstance(a, bool) and math.isfinite(a)
                           for a in action)):
            raise BadMessage(f'"action" must be a list of {action_dim} finite numbers')
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise BadMessage('"seq" must be an integer >= 0')
        return Action(tuple(float(min(max(a, -1.0), 1.0)) for a in action), seq)
    if kind == "new_scene":
        scene = data.get("scene")
        if scene is not None and (not isinstance(scene, int) or isinstance(scene, bool) or not 0 <= scene < 2**31):
            raise BadMessage('"scene" must be null or an integer in [0, 2^31)')
        return NewScene(scene)
    if kind == "prompt":
        prompt = data.get("text")
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT:
            raise BadMessage(f'"text" must be a non-empty string of at most {MAX_PROMPT} characters')
        if any(0xD800 <= ord(c) <= 0xDFFF for c in prompt):  # valid JSON, but no text: cannot be encoded or echoed
            raise BadMessage('"text" holds a lone surrogate (\\ud800-\\udfff): send text, not half a character')
        if any(unicodedata.category(c) == "Cc" for c in prompt):
            raise BadMessage('"text" holds a control character: send one line of text')
        return Prompt(prompt.strip())
    if kind in ("pause", "record"):
        key = "paused" if kind == "pause" else "on"
        value = data.get(key)
        if not isinstance(value, bool):
            raise BadMessage(f'"{key}" must be true or false')
        return Pause(value) if kind == "pause" else Record(value)
    raise BadMessage(f"unknown message type {kind!r}: expected action, new_scene, prompt, pause or record")


def png(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes (lossless: the page shows exactly the generated pixels)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def pack_frame(header: dict, images: list[np.ndarray]) -> bytes:
    """One binary frame message: header length, header JSON (with "images": the PNGs' byte lengths), PNGs."""
    encoded = [png(i) for i in images]
    head = json.dumps({**header, "type": "frame", "images": [len(e) for e in encoded]}).encode()
    return struct.pack(">I", len(head)) + head + b"".join(encoded)


def unpack_frame(message: bytes) -> tuple[dict, list[np.ndarray]]:
    """The inverse of `pack_frame` (tests and scripts): the header and the images (H, W, 3) uint8."""
    (length,) = struct.unpack(">I", message[:4])
    header = json.loads(message[4 : 4 + length])
    images, at = [], 4 + length
    for size in header["images"]:
        images.append(np.asarray(Image.open(io.BytesIO(message[at : at + size])).convert("RGB")))
        at += size
    return header, images
