// Files: decoded by Web Audio at the model's rate (or at twice it, then low-passed and brought down in the
// worker), padded to the clip length and tagged as `dymn tag` does; a detector's frames become events as
// `dymn detect` finds them. Long files are refused above the length `dymn tag` takes whole.
import { $, UserError, clipSamples, activation, el, inWorker, meta, padded, round, runModel, seconds, setStatus,
  tagList, topTags } from "./model.js";

const results = [];
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
  // A file at the model's rate is decoded as it is. Any other is decoded at 2x the model's rate and brought down
  // in the worker by a long low-pass filter, as close to soxr (what `dymn tag` resamples with) as the browser
  // lets a page get: the browser's own resampler to the model's rate cuts the top of the band that the mel
  // frontend sees, which moved tags by up to 0.03 (benchmarks/bench_web.py).
  const m = meta.value;
  const bytes = await file.arrayBuffer();
  const direct = headerRate(bytes) === m.sample_rate;
  const ctx = new OfflineAudioContext(1, 1, direct ? m.sample_rate : 2 * m.sample_rate);
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

export function addFiles(files) {
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

export function download() {
  const blob = new Blob([JSON.stringify(results, null, 2) + "\n"], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = meta.value.level === "frame" ? "dymn-events.json" : "dymn-tags.json";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

