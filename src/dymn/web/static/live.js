// Live: the microphone through an AudioWorklet (capture.js) into a ring buffer; every hop the last window
// (shorter at the start, zero-padded) is tagged; the current top tags update in place and a heat map scrolls
// over the last minute.
import { $, activation, clipSamples, el, meta, runModel, seconds, tagList, topTags } from "./model.js";

export const live = { on: false, ctx: null, stream: null, node: null, ring: null, pos: 0, filled: 0, sinceHop: 0,
  total: 0, busy: false, skipped: 0, history: [], resample: null };

function micError(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "Microphone permission was denied. Allow the microphone for this site in the browser's settings and " +
      "press Start again; tagging files works without it.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") return "No microphone was found.";
  if (name === "NotReadableError") return "The microphone is in use by another program or could not be opened.";
  return `The microphone could not be started: ${err && err.message ? err.message : err}`;
}

export async function startLive() {
  const m = meta.value;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    $("live-status").textContent = "This browser offers no microphone here: it needs a secure page (https:// or http://localhost).";
    $("live-status").classList.add("error");
    return;
  }
  $("mic").disabled = true;
  $("live-status").classList.remove("error");
  $("live-status").textContent = "asking for the microphone…";
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (err) {
    $("live-status").textContent = micError(err);
    $("live-status").classList.add("error");
    $("mic").disabled = false;
    return;
  }
  let ctx;
  try {
    ctx = new AudioContext({ sampleRate: m.sample_rate });
  } catch {
    ctx = new AudioContext(); // this browser resamples no microphone: the page does (linear)
  }
  try {
    await ctx.audioWorklet.addModule("capture.js");
    const node = new AudioWorkletNode(ctx, "dymn-capture");
    const source = ctx.createMediaStreamSource(stream);
    source.connect(node);
    node.connect(ctx.destination); // it writes silence: connected so that the browser runs it
    node.port.onmessage = ({ data }) => onSamples(live.resample ? live.resample(data) : data);
    await ctx.resume();
    Object.assign(live, { on: true, ctx, stream, node, ring: new Float32Array(Math.round(m.window_seconds * m.sample_rate)),
      pos: 0, filled: 0, sinceHop: 0, total: 0, busy: false, skipped: 0, history: [],
      resample: ctx.sampleRate === m.sample_rate ? null : resampler(ctx.sampleRate, m.sample_rate) });
  } catch (err) {
    stream.getTracks().forEach((t) => t.stop());
    ctx.close();
    $("live-status").textContent = micError(err);
    $("live-status").classList.add("error");
    $("mic").disabled = false;
    return;
  }
  for (const track of stream.getAudioTracks()) track.onended = () => stopLive("the microphone was disconnected");
  $("mic").textContent = "Stop";
  $("mic").disabled = false;
  $("timeline").classList.remove("hidden");
  $("live-status").textContent = "listening…";
}

export function stopLive(reason) {
  if (!live.on) return;
  live.on = false;
  live.stream.getTracks().forEach((t) => t.stop());
  live.ctx.close();
  $("mic").textContent = "Start the microphone";
  $("live-status").textContent = reason ? `stopped: ${reason}` : "stopped";
}

function resampler(from, to) {
  // linear interpolation across blocks (only where the browser would not open the microphone at the model's rate)
  const step = from / to;
  let t = 0;
  let last = 0;
  return (block) => {
    const out = [];
    while (t < block.length) {
      const i = Math.floor(t);
      const a = i === 0 ? last : block[i - 1];
      const frac = t - i;
      out.push(a + (block[i] - a) * frac);
      t += step;
    }
    t -= block.length;
    last = block[block.length - 1];
    return Float32Array.from(out);
  };
}

function onSamples(block) {
  if (!live.on) return;
  const m = meta.value;
  const hop = Math.round(m.hop_seconds * m.sample_rate);
  const N = live.ring.length;
  for (let i = 0; i < block.length; i++) {
    live.ring[live.pos] = block[i];
    live.pos = (live.pos + 1) % N;
    live.total++;
    if (live.filled < N) live.filled++;
    if (++live.sinceHop >= hop) {
      live.sinceHop = 0;
      liveWindow();
    }
  }
}

function liveWindow() {
  const m = meta.value;
  if (live.busy) { // the model is slower than the hop: this window is skipped, the next one runs
    live.skipped++;
    return;
  }
  const N = live.ring.length;
  const n = live.filled;
  const wave = new Float32Array(Math.max(n, clipSamples()));
  const start = (live.pos - n + N) % N;
  const head = Math.min(n, N - start);
  wave.set(live.ring.subarray(start, start + head), 0);
  if (head < n) wave.set(live.ring.subarray(0, n - head), head);
  const t = live.total / m.sample_rate;
  live.busy = true;
  runModel(wave).then(({ outputs, ms }) => {
    live.busy = false;
    if (!live.on) return;
    addLive(t, activation(outputs.logits.data), ms, n / m.sample_rate);
  }).catch((err) => {
    live.busy = false;
    stopLive(err.message);
  });
}

const now = [];

function addLive(t, probs, ms, windowSeconds) {
  const m = meta.value;
  live.history.push({ t, probs });
  while (live.history.length && live.history[0].t < t - 60) live.history.shift();
  const tags = topTags(probs, 5);
  if (!now.length) {
    for (let i = 0; i < 5; i++) {
      const row = tagList([{ label: "", probability: 0 }]).firstChild;
      now.push(row);
      $("now").append(row);
    }
    $("now").classList.add("tags");
  }
  tags.forEach((tag, i) => { // updated in place
    now[i].querySelector(".name").textContent = tag.label;
    now[i].querySelector(".fill").style.width = `${(100 * tag.probability).toFixed(1)}%`;
    now[i].querySelector(".value").textContent = tag.probability.toFixed(3);
  });
  const tr = el("tr");
  tr.dataset.top = tags[0].label;
  tr.append(el("td", "", t.toFixed(1)), el("td", "", tags.map((x) => `${x.label} ${x.probability.toFixed(2)}`).join(", ")));
  const body = $("live-log").tBodies[0];
  body.prepend(tr);
  while (body.rows.length > 120) body.deleteRow(body.rows.length - 1);
  $("live-status").textContent = `listening · ${seconds(t)} · window ${windowSeconds.toFixed(1)} s · ` +
    `${ms.toFixed(0)} ms for it` + (live.skipped ? ` · ${live.skipped} windows skipped (the model was busy)` : "");
  drawTimeline(t);
}

const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function color(p) {
  const x = Math.min(1, Math.max(0, p)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const c = VIRIDIS[i].map((v, k) => Math.round(v + (VIRIDIS[i + 1][k] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function drawTimeline(latest) {
  const m = meta.value;
  const score = new Map(); // classes in any window's top 3, by their highest probability in the last minute
  for (const { probs } of live.history) {
    for (const tag of topTags(probs, 3)) score.set(tag.index, Math.max(score.get(tag.index) || 0, tag.probability));
  }
  const rows = [...score.keys()].sort((a, b) => score.get(b) - score.get(a)).slice(0, 8);
  const canvas = $("heat");
  const g = canvas.getContext("2d");
  const W = canvas.width;
  const H = canvas.height / 8;
  g.clearRect(0, 0, W, canvas.height);
  const colW = Math.max(1, (W * m.hop_seconds) / 60);
  for (const { t, probs } of live.history) {
    const x = W * (1 - (latest - t) / 60) - colW;
    rows.forEach((c, r) => {
      g.fillStyle = color(probs[c]);
      g.fillRect(x, r * H, colW + 0.5, H - 1);
    });
  }
  const labels = $("rows");
  labels.replaceChildren(...rows.map((c) => el("div", "", m.labels[c])));
  canvas.dataset.rows = JSON.stringify(rows.map((c) => m.labels[c]));
}

