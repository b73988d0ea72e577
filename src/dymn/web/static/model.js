// The model, run in a Web Worker (worker.js), and what the page's parts share: its settings (model.json), the
// activation and top tags as `dymn tag` computes them, and small helpers for messages and tag bars.
export const $ = (id) => document.getElementById(id);
export const meta = { value: null };
export const speed = { loadMs: null, runs: [], threads: 1 };
let worker = null;
let nextId = 1;
const pending = new Map();
let loading = null;

export class UserError extends Error {}

export function setStatus(text, error = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", error);
}

export function fail(text) {
  setStatus(text, true);
  document.body.dataset.state = "failed";
}

export function seconds(s) {
  if (s >= 3600) return `${(s / 3600).toFixed(1)} h`;
  if (s >= 60) return `${(s / 60).toFixed(1)} min`;
  return `${s.toFixed(2)} s`;
}

// --- the model ------------------------------------------------------------------------------------------------
/** Start the worker and load the model (a promise of its size, load time and threads). */
export function loadModel() {
  worker = new Worker("worker.js", { type: "module" });
  worker.onmessage = onWorker;
  worker.onerror = (e) => fail(`The model's worker stopped: ${e.message || "an error"}`);
  return new Promise((resolve, reject) => {
    loading = { resolve, reject };
    worker.postMessage({ type: "load", ortBase: meta.value.ort.base, model: meta.value.model });
  });
}

export function inWorker(type, wave) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, samples: wave.length, type });
    worker.postMessage({ type, id, wave }, [wave.buffer]);
  });
}

export function runModel(wave) {
  return inWorker("run", wave);
}

function onWorker({ data }) {
  if (data.type === "loaded") {
    speed.loadMs = performance.now();
    speed.threads = data.threads;
    loading.resolve(data);
    return;
  }
  if (data.type === "failed") {
    loading.reject(new Error(data.message));
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

export function clipSamples() {
  return Math.round(meta.value.clip_seconds * meta.value.sample_rate);
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

export function showSpeed() {
  const m = meta.value;
  const parts = [`${m.name} (${m.dtype}, ${(m.model_bytes / 1e6).toFixed(1)} MB) loaded in ${Math.round(speed.loadMs)} ms`];
  if (speed.runs.length) {
    parts.push(`${median(speed.runs).toFixed(0)} ms per ${m.clip_seconds} s window (median of the last ${speed.runs.length})`);
  }
  parts.push(`onnxruntime-web ${m.ort.version}, WebAssembly, ${speed.threads} thread${speed.threads > 1 ? "s" : ""}`);
  $("speed").textContent = parts.join(" · ");
}

export function activation(logits) {
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

export function topTags(probs, k) {
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  return order.slice(0, k).map((i) => ({ label: meta.value.labels[i], index: i, probability: probs[i] }));
}

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function tagList(tags) {
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

export function padded(wave, samples) {
  if (wave.length >= samples) return wave;
  const out = new Float32Array(samples);
  out.set(wave);
  return out;
}

export function round(v, digits) {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
