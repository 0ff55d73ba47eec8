// The play page: held keys -> actions over a WebSocket; PNG frames back, drawn on two canvases; live numbers.
// window.playStats holds what the browser tests read (frames, latencies, errors, every frame's header; superseded:
// inputs replaced by a newer one before any frame was made with them, which therefore have no latency).
"use strict";
const $ = (id) => document.getElementById(id);
const stats = window.playStats = {
  connected: false, hello: null, frames: 0, arrivals: [], latencies: [], superseded: 0, errors: [], messages: [],
  header: null, headers: [],
};
const DIRS = { up: [0, -1], down: [0, 1], left: [-1, 0], right: [1, 0] };
const KEYS = { ArrowUp: "up", ArrowDown: "down", ArrowLeft: "left", ArrowRight: "right",
               w: "up", s: "down", a: "left", d: "right", W: "up", S: "down", A: "left", D: "right" };
const held = new Set();
const sentAt = new Map();
let seq = 0, measured = 0, lastAction = "0,0", paused = false, recording = false, drawing = Promise.resolve();

const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${location.search}`);
ws.binaryType = "arraybuffer";
ws.onopen = () => { stats.connected = true; };
ws.onclose = () => { stats.connected = false; status("disconnected: reload the page to play again"); };
ws.onmessage = (event) => {
  if (typeof event.data === "string") return onText(JSON.parse(event.data));
  const arrived = performance.now();
  drawing = drawing.then(() => onFrame(event.data, arrived));
};

function status(text) { $("status").textContent = text; }

function onText(message) {
  stats.messages.push(message);
  if (message.type === "hello") { stats.hello = message; $("prompt").value = message.prompt || ""; }
  else if (message.type === "scene") { $("prompt").value = message.prompt || ""; status(`scene ${message.scene}`); }
  else if (message.type === "prompt") status(`prompt: ${message.prompt}`);
  else if (message.type === "recorded") {
    status(message.video ? `recorded ${message.video} (replay: ${message.log})` : "recorded nothing: no frame was made");
  }
  else if (message.type === "error") { stats.errors.push(message.message); status(`server: ${message.message}`); }
}

async function onFrame(buffer, arrived) {
  const view = new DataView(buffer);
  const length = view.getUint32(0);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  let at = 4 + length;
  const images = [];
  for (const size of header.images) {
    images.push(await createImageBitmap(new Blob([new Uint8Array(buffer, at, size)], { type: "image/png" })));
    at += size;
  }
  draw($("generated"), images[header.generated - 1]);
  draw($("truth"), images[images.length - 1]);
  const now = performance.now();
  if (header.seq > measured && sentAt.has(header.seq)) {  // the first frame made with this input
    stats.latencies.push(now - sentAt.get(header.seq));
    stats.superseded += header.seq - measured - 1;  // the latest action wins: these never reached a frame
    measured = header.seq;
  }
  stats.frames += 1;
  stats.arrivals.push(arrived);
  stats.header = header;
  stats.headers.push(header);
  show(header);
}

function draw(canvas, image) {
  if (canvas.width !== image.width) { canvas.width = image.width; canvas.height = image.height; }
  canvas.getContext("2d").drawImage(image, 0, 0);
}

function quantile(values, q) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function show(header) {
  const recent = stats.arrivals.filter((t) => t > performance.now() - 2000);
  const fps = recent.length > 1 ? (recent.length - 1) / ((recent[recent.length - 1] - recent[0]) / 1000) : NaN;
  $("fps").textContent = `${fps.toFixed(1)} (of ${stats.hello ? stats.hello.fps : "?"})`;
  $("model").textContent = `${header.model_ms.toFixed(1)} ms`;
  $("decode").textContent = `${header.decode_ms.toFixed(1)} ms`;
  const last = stats.latencies.slice(-100);
  $("latency").textContent = last.length ? `${quantile(last, 0.5).toFixed(0)} / ${quantile(last, 0.95).toFixed(0)} ms` : "–";
  $("error").textContent = `${header.agent_error.toFixed(2)} / ${header.mean_agent_error.toFixed(2)} px`;
  const share = (v) => (v === null || v === undefined ? "–" : `${Math.round(100 * v)}%`);
  $("objects").textContent = `${share(header.objects_kept)} / ${share(header.mean_objects_kept)}`;
  $("frame").textContent = `${header.index} · ${header.late}`;
}

function send(message) { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message)); }

function steer() {
  let x = 0, y = 0;
  for (const dir of held) { x += DIRS[dir][0]; y += DIRS[dir][1]; }
  const norm = Math.hypot(x, y) || 1;
  const action = [x / norm, y / norm];
  const key = action.join(",");
  if (key === lastAction) return;
  lastAction = key;
  seq += 1;
  sentAt.set(seq, performance.now());
  send({ type: "action", action, seq });
}

function press(dir, down) { if (down) held.add(dir); else held.delete(dir); steer(); }

document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || !(e.key in KEYS)) return;
  e.preventDefault();
  if (!e.repeat) press(KEYS[e.key], true);
});
document.addEventListener("keyup", (e) => { if (e.key in KEYS) press(KEYS[e.key], false); });
window.addEventListener("blur", () => { held.clear(); steer(); });
for (const button of document.querySelectorAll("[data-dir]")) {
  const dir = button.dataset.dir;
  button.addEventListener("pointerdown", () => press(dir, true));
  for (const up of ["pointerup", "pointerleave", "pointercancel"]) button.addEventListener(up, () => press(dir, false));
}
$("scene").onclick = () => send({ type: "new_scene", scene: null });
$("pause").onclick = () => {
  paused = !paused;
  $("pause").classList.toggle("on", paused);
  $("pause").textContent = paused ? "resume" : "pause";
  send({ type: "pause", paused });
};
$("record").onclick = () => {
  recording = !recording;
  $("record").classList.toggle("on", recording);
  $("record").textContent = recording ? "stop recording" : "record";
  send({ type: "record", on: recording });
};
const switchPrompt = () => { if ($("prompt").value.trim()) send({ type: "prompt", text: $("prompt").value }); };
$("send-prompt").onclick = switchPrompt;
$("prompt").addEventListener("keydown", (e) => { if (e.key === "Enter") switchPrompt(); });
