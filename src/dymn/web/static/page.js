// The page: files decoded and resampled by Web Audio, the microphone through an AudioWorklet, the model in a
// Web Worker (worker.js). What `dymn tag` does on the command line, done here: short clips are zero-padded to
// the model's clip length, long files are refused above the length `dymn tag` takes whole.
const $ = (id) => document.getElementById(id);
const meta = { value: null };
const speed = { loadMs: null, runs: [], threads: 1 };
const results = [];
let worker = null;
let nextId = 1;
const pending = new Map();

class UserError extends Error {}

function setStatus(text, error = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", error);
}

function fail(text) {
  setStatus(text, true);
  document.body.dataset.state = "failed";
}

function seconds(s) {
  if (s >= 3600) return `${(s / 3600).toFixed(1)} h`;
  if (s >= 60) return `${(s / 60).toFixed(1)} min`;
  return `${s.toFixed(2)} s`;
}

// --- the model ------------------------------------------------------------------------------------------------
function inWorker(type, wave) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, samples: wave.length, type });
    worker.postMessage({ type, id, wave }, [wave.buffer]);
  });
}

function runModel(wave) {
  return inWorker("run", wave);
}

function onWorker({ data }) {
  if (data.type === "loaded") {
    speed.loadMs = performance.now();
    speed.threads = data.threads;
    ready(data);
    return;
  }
  if (data.type === "failed") {
    fail(`The model could not be loaded: ${data.message}`);
    loaded.reject(new Error(data.message));
    return;
  }
  const job = pending.get(data.id);
  if (!job) return;
  pending.delete(data.id);
  if (data.type === "error") {
    job.reject(new Error(`the model failed: ${data.message}`));
    return;
  }
  if (job.type === "decimate") {
    job.resolve(data.wave);
    return;
  }
  if (job.samples >= clipSamples()) { // per 10 s window: longer files take time in proportion
    speed.runs.push((data.ms * clipSamples()) / job.samples);
    if (speed.runs.length > 20) speed.runs.shift();
    showSpeed();
  }
  job.resolve({ outputs: data.outputs, ms: data.ms });
}

function clipSamples() {
  return Math.round(meta.value.clip_seconds * meta.value.sample_rate);
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

function showSpeed() {
  const m = meta.value;
  const parts = [`${m.name} (${m.dtype}, ${(m.model_bytes / 1e6).toFixed(1)} MB) loaded in ${Math.round(speed.loadMs)} ms`];
  if (speed.runs.length) {
    parts.push(`${median(speed.runs).toFixed(0)} ms per ${m.clip_seconds} s window (median of the last ${speed.runs.length})`);
  }
  parts.push(`onnxruntime-web ${m.ort.version}, WebAssembly, ${speed.threads} thread${speed.threads > 1 ? "s" : ""}`);
  $("speed").textContent = parts.join(" · ");
}

function activation(logits) {
  const out = new Float32Array(logits.length);
  if (meta.value.activation === "softmax") {
    let max = -Infinity;
    for (const v of logits) max = Math.max(max, v);
    let sum = 0;
    for (let i = 0; i < logits.length; i++) sum += (out[i] = Math.exp(logits[i] - max));
    for (let i = 0; i < logits.length; i++) out[i] /= sum;
  } else {
    for (let i = 0; i < logits.length; i++) out[i] = 1 / (1 + Math.exp(-logits[i]));
  }
  for (const v of logits) if (!Number.isFinite(v)) throw new Error("the model gave scores that are not finite numbers");
  return out;
}

function topTags(probs, k) {
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  return order.slice(0, k).map((i) => ({ label: meta.value.labels[i], index: i, probability: probs[i] }));
}

// --- files ----------------------------------------------------------------------------------------------------
function probeDuration(file) {
  // the length from the file's header, without decoding it (null when the browser cannot tell)
  return new Promise((resolve) => {
    const url = URL.createObjectURL(file);
    const audio = document.createElement("audio");
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      audio.removeAttribute("src");
      URL.revokeObjectURL(url);
      resolve(value);
    };
    const timer = setTimeout(() => finish(null), 5000);
    audio.preload = "metadata";
    audio.onloadedmetadata = () => finish(Number.isFinite(audio.duration) ? audio.duration : null);
    audio.onerror = () => finish(null);
    audio.src = url;
  });
}

function headerRate(bytes) {
  // the sample rate a WAV or FLAC file declares (null for other formats)
  const v = new DataView(bytes);
  const tag = (o) => (o + 4 <= v.byteLength ? String.fromCharCode(v.getUint8(o), v.getUint8(o + 1), v.getUint8(o + 2), v.getUint8(o + 3)) : "");
  if ((tag(0) === "RIFF" || tag(0) === "RF64") && tag(8) === "WAVE") {
    for (let o = 12; o + 16 <= v.byteLength;) {
      const size = v.getUint32(o + 4, true);
      if (tag(o) === "fmt ") return v.getUint32(o + 12, true);
      o += 8 + size + (size % 2);
    }
  }
  if (tag(0) === "fLaC" && v.byteLength >= 21) return (v.getUint8(18) << 12) | (v.getUint8(19) << 4) | (v.getUint8(20) >> 4);
  return null;
}

async function decode(file) {
  // A file at the model's rate is decoded as it is. Any other is decoded at 3x the model's rate and brought down
  // in the worker by a long low-pass filter, as close to soxr (what `dymn tag` resamples with) as the browser
  // lets a page get: the browser's own resampler to the model's rate cuts the top of the band that the mel
  // frontend sees, which moved tags by up to 0.03 (benchmarks/bench_web.py).
  const m = meta.value;
  const bytes = await file.arrayBuffer();
  const direct = headerRate(bytes) === m.sample_rate;
  const ctx = new OfflineAudioContext(1, 1, direct ? m.sample_rate : 3 * m.sample_rate);
  let buffer;
  try {
    buffer = await ctx.decodeAudioData(bytes);
  } catch (err) {
    throw new UserError("not audio this browser can decode" + (err && err.name ? ` (${err.name})` : ""));
  }
  const n = buffer.length;
  const count = buffer.numberOfChannels;
  const out = Float32Array.from(buffer.getChannelData(0));
  for (let c = 1; c < count; c++) {
    const d = buffer.getChannelData(c);
    for (let i = 0; i < n; i++) out[i] += d[i];
  }
  if (count > 1) {
    const scale = Math.fround(1 / count);
    for (let i = 0; i < n; i++) out[i] *= scale;
  }
  return direct ? out : await inWorker("decimate", out);
}

function padded(wave, samples) {
  if (wave.length >= samples) return wave;
  const out = new Float32Array(samples);
  out.set(wave);
  return out;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function tagList(tags) {
  const ol = el("ol", "tags");
  for (const t of tags) {
    const li = el("li", "tag");
    li.append(el("span", "name", t.label));
    const bar = el("span", "bar");
    const fill = el("span", "fill");
    fill.style.width = `${(100 * t.probability).toFixed(1)}%`;
    bar.append(fill);
    li.append(bar, el("span", "value", t.probability.toFixed(3)));
    ol.append(li);
  }
  return ol;
}

function checkLength(file, length) {
  const m = meta.value;
  if (length !== null && length > m.max_file_seconds) {
    throw new UserError(`${seconds(length)} long: this page tags files of up to ${seconds(m.max_file_seconds)} ` +
      "whole, as `dymn tag` does; `dymn timeline` streams longer audio");
  }
}

async function tagFile(file, item) {
  const m = meta.value;
  if (file.size === 0) throw new UserError("empty file (0 bytes)");
  if (file.size > m.max_file_bytes) {
    throw new UserError(`${(file.size / 2 ** 30).toFixed(1)} GB: this page reads files of up to ${m.max_file_bytes / 2 ** 30} GB`);
  }
  checkLength(file, await probeDuration(file));
  const wave = await decode(file);
  if (wave.length === 0) throw new UserError("holds no audio (0 samples)");
  const duration = wave.length / m.sample_rate;
  checkLength(file, duration);
  const notes = [];
  if (duration < m.short_clip_seconds) {
    notes.push(`only ${Math.round(duration * 1000)} ms long: tags of clips under ${m.short_clip_seconds} s are unreliable`);
  }
  let peak = 0;
  for (const v of wave) peak = Math.max(peak, Math.abs(v));
  if (peak < 1e-5) notes.push(peak === 0 ? "silent: every sample is zero, so its tags describe silence"
    : "nearly silent (below −100 dBFS): its tags describe silence");
  const result = m.level === "frame" ? await detectEvents(file.name, wave) : await clipTags(file.name, wave);
  item.meta.textContent = seconds(duration);
  for (const n of notes) item.body.append(el("p", "note", n));
  if (m.level === "frame") item.body.append(eventTable(result.events));
  else item.body.append(tagList(result.tags.slice(0, 10)));
  item.li.dataset.state = "done";
  return result;
}

async function clipTags(name, wave) {
  const m = meta.value;
  const duration = round(wave.length / m.sample_rate, 4); // before the samples move to the worker
  const { outputs } = await runModel(padded(wave, clipSamples()));
  return { file: name, duration, tags: topTags(activation(outputs.logits.data), m.top_k) };
}

async function detectEvents(name, wave) {
  // as `dymn detect`: 10 s chunks (the last zero-padded), sigmoid frames, a median filter over `median` frames
  // with mirrored edges, events where a class is above the threshold
  const m = meta.value;
  const chunk = clipSamples();
  const chunks = Math.max(1, Math.ceil(wave.length / chunk));
  const C = m.labels.length;
  let frames = null;
  let T = 0;
  for (let k = 0; k < chunks; k++) {
    const part = padded(wave.slice(k * chunk, (k + 1) * chunk), chunk);
    const { outputs } = await runModel(part);
    const out = outputs.frame_logits;
    const t = out.dims[2];
    if (!frames) frames = new Float32Array(chunks * t * C);
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < t; i++) {
        const v = out.data[c * t + i];
        if (!Number.isFinite(v)) throw new Error("the model gave scores that are not finite numbers");
        frames[(T + i) * C + c] = 1 / (1 + Math.exp(-v));
      }
    }
    T += t;
  }
  const duration = wave.length / m.sample_rate;
  const half = Math.floor(m.median / 2);
  const events = [];
  const column = new Float64Array(T + 2 * half);
  const win = new Float64Array(2 * half + 1);
  for (let c = 0; c < C; c++) {
    for (let i = 0; i < T; i++) column[half + i] = frames[i * C + c];
    for (let i = 0; i < half; i++) { // symmetric edges: d c b a | a b c d
      column[half - 1 - i] = column[half + Math.min(i, T - 1)];
      column[half + T + i] = column[half + T - 1 - Math.min(i, T - 1)];
    }
    let start = -1;
    let best = -Infinity;
    for (let i = 0; i <= T; i++) {
      let v = -Infinity;
      if (i < T) {
        for (let j = 0; j < win.length; j++) win[j] = column[i + j];
        win.sort();
        v = win[half];
      }
      if (v > m.threshold) {
        if (start < 0) { start = i; best = v; } else best = Math.max(best, v);
      } else if (start >= 0) {
        const edge = (f) => Math.min(f * m.frame_seconds, duration);
        const e = { label: m.labels[c], index: c, onset: round(edge(start), 3), offset: round(edge(i), 3), confidence: round(best, 4) };
        if (m.mids) e.mid = m.mids[c];
        events.push(e);
        start = -1;
      }
    }
  }
  events.sort((a, b) => a.onset - b.onset || a.index - b.index);
  return { file: name, duration: round(duration, 4), model: m.name, frame_seconds: m.frame_seconds, median: m.median, events };
}

function round(v, digits) {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function eventTable(events) {
  if (!events.length) return el("p", "note", "no events above the threshold");
  const table = el("table", "events");
  const head = el("tr");
  for (const h of ["event", "onset (s)", "offset (s)", "confidence"]) head.append(el("th", "", h));
  table.append(el("thead"), el("tbody"));
  table.tHead.append(head);
  for (const e of events.slice(0, 200)) {
    const tr = el("tr");
    tr.append(el("td", "", e.label), el("td", "num", e.onset.toFixed(2)), el("td", "num", e.offset.toFixed(2)),
      el("td", "num", e.confidence.toFixed(3)));
    table.tBodies[0].append(tr);
  }
  return table;
}

let fileQueue = Promise.resolve();

function addFiles(files) {
  for (const file of files) {
    const li = el("li");
    li.dataset.state = "working";
    const head = el("div", "head");
    const metaEl = el("span", "meta", "waiting…");
    head.append(el("span", "file", file.name), metaEl);
    const body = el("div");
    li.append(head, body);
    $("results").prepend(li);
    const item = { li, meta: metaEl, body };
    fileQueue = fileQueue.then(async () => {
      metaEl.textContent = "working…";
      setStatus(`Tagging ${file.name}…`);
      try {
        const result = await tagFile(file, item);
        results.push(result);
        $("download").disabled = false;
        setStatus(`Done: ${file.name}`);
      } catch (err) {
        const text = err instanceof UserError ? err.message : `could not be tagged: ${err.message}`;
        li.dataset.state = "error";
        metaEl.textContent = "";
        body.append(el("p", "error", text));
        setStatus(`${file.name}: ${text}`, true);
      }
    });
  }
}

function download() {
  const blob = new Blob([JSON.stringify(results, null, 2) + "\n"], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = meta.value.level === "frame" ? "dymn-events.json" : "dymn-tags.json";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// --- live -----------------------------------------------------------------------------------------------------
const live = { on: false, ctx: null, stream: null, node: null, ring: null, pos: 0, filled: 0, sinceHop: 0,
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

async function startLive() {
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

function stopLive(reason) {
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

// --- start ----------------------------------------------------------------------------------------------------
let loaded;
const readyPromise = new Promise((resolve, reject) => { loaded = { resolve, reject }; });
readyPromise.catch(() => {});

function ready(info) {
  const m = meta.value;
  document.body.dataset.state = "ready";
  $("model").textContent = `Model ${m.name} (${m.level === "frame" ? "frame-level detector" : "tagger"}, ` +
    `${m.labels.length} classes, ${m.dtype}, ${(info.bytes / 1e6).toFixed(1)} MB), ready.`;
  $("file").disabled = false;
  $("files-hint").textContent = `Files up to ${seconds(m.max_file_seconds)}; clips shorter than ` +
    `${m.clip_seconds} s are zero-padded to it, as \`dymn tag\` does.`;
  if (m.level === "frame") {
    $("live-hint").textContent = "Live detection is not offered for detectors yet: tag files here, or export a tagger (mn*) for live use.";
  } else {
    $("mic").disabled = false;
    $("live-hint").textContent = `Every ${m.hop_seconds} s the last ${m.window_seconds} s of sound (less at the start, ` +
      "zero-padded) is tagged; the timeline shows the last minute.";
  }
  setStatus("Ready.");
  showSpeed();
  loaded.resolve(info);
}

async function start() {
  document.body.dataset.state = "loading";
  if (typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function") {
    fail("This browser has no WebAssembly (or it is turned off), which the model needs to run here. Use a current " +
      "Chrome, Edge, Firefox or Safari with WebAssembly on, or `dymn tag` on the command line.");
    $("model").textContent = "The model cannot run in this browser.";
    return;
  }
  if (typeof Worker !== "function" || typeof OfflineAudioContext !== "function") {
    fail("This browser lacks Web Workers or Web Audio, which the page needs.");
    return;
  }
  try {
    const resp = await fetch("model.json");
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    meta.value = await resp.json();
  } catch (err) {
    fail(`Cannot read model.json (${err.message}): serve this folder with a web server, e.g. \`python -m http.server\`.`);
    return;
  }
  worker = new Worker("worker.js", { type: "module" });
  worker.onmessage = onWorker;
  worker.onerror = (e) => fail(`The model's worker stopped: ${e.message || "an error"}`);
  worker.postMessage({ type: "load", ortBase: meta.value.ort.base, model: meta.value.model });
  setStatus("Loading the model…");
}

$("file").addEventListener("change", (e) => {
  addFiles([...e.target.files]);
  e.target.value = "";
});
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (document.body.dataset.state === "ready") addFiles([...e.dataTransfer.files]);
});
$("download").addEventListener("click", download);
$("mic").addEventListener("click", () => (live.on ? stopLive() : startLive()));

// for scripts (benchmarks, tests): the model's settings, a promise that settles when it is loaded, one run
window.dymn = { meta, ready: readyPromise, run: runModel, speed };
start();
