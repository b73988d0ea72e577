// The model runs here, off the page's thread: onnxruntime-web (WebAssembly) on waveforms at the model's rate.
// Messages in: {type: "load", ortBase, model}, then {type: "run" | "decimate", id, wave}; out: "loaded" ({bytes,
// threads}) or "failed", and per job, in order, "result" (a run: {id, outputs: {name: {data, dims}}, ms}; a
// decimation: {id, wave}) or "error" ({id, message}).
let ort = null;
let session = null;
let queue = Promise.resolve(); // one run at a time: a session takes no concurrent runs

function describe(err) {
  const text = err && err.message ? err.message : String(err);
  return text.split("\n")[0].slice(0, 300);
}

async function load({ ortBase, model }) {
  const base = new URL(ortBase, self.location.href).href;
  try {
    ort = await import(base + "ort.wasm.min.mjs");
  } catch (err) {
    throw new Error(`cannot load onnxruntime-web from ${base} (${describe(err)}); ` +
      "export the site with --ort DIR to serve a local copy");
  }
  ort.env.wasm.wasmPaths = base;
  // threads need a cross-origin-isolated page (COOP/COEP headers); a plain static host gives one thread
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  const resp = await fetch(new URL(model, self.location.href));
  if (!resp.ok) throw new Error(`cannot fetch ${model}: HTTP ${resp.status}`);
  const bytes = new Uint8Array(await resp.arrayBuffer());
  session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  return { bytes: bytes.length, threads: ort.env.wasm.numThreads };
}

async function run({ id, wave }) {
  const t0 = performance.now();
  const input = new ort.Tensor("float32", wave, [1, wave.length]);
  const result = await session.run({ waveform: input });
  const ms = performance.now() - t0;
  const outputs = {};
  const transfer = [];
  for (const name of Object.keys(result)) {
    const data = Float32Array.from(result[name].data);
    outputs[name] = { data, dims: result[name].dims };
    transfer.push(data.buffer);
    if (result[name].dispose) result[name].dispose();
  }
  if (input.dispose) input.dispose();
  self.postMessage({ type: "result", id, outputs, ms }, transfer);
}

// Down by 2 (from 2x the model's rate): a linear-phase Kaiser-windowed low-pass, flat to 0.913 of the new
// Nyquist frequency and 100 dB down at it, as soxr's "HQ" setting that `dymn tag` resamples with.
let taps = null;

function lowpass() {
  const pass = 0.913 / 2;
  const stop = 1 / 2; // in units of the input's Nyquist frequency
  const A = 100;
  const beta = 0.1102 * (A - 8.7);
  let n = Math.ceil((A - 8) / (2.285 * Math.PI * (stop - pass))) | 1;
  const cut = (pass + stop) / 2;
  const bessel = (x) => {
    let sum = 1;
    let term = 1;
    for (let k = 1; k < 50; k++) {
      term *= (x / (2 * k)) ** 2;
      sum += term;
    }
    return sum;
  };
  const h = new Float64Array(n);
  const mid = (n - 1) / 2;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const t = i - mid;
    const sinc = t === 0 ? cut : Math.sin(Math.PI * cut * t) / (Math.PI * t);
    const w = bessel(beta * Math.sqrt(1 - (t / mid) ** 2)) / bessel(beta);
    total += (h[i] = sinc * w);
  }
  for (let i = 0; i < n; i++) h[i] /= total;
  return h;
}

function decimate({ id, wave }) {
  if (!taps) taps = lowpass();
  const n = taps.length;
  const mid = (n - 1) / 2;
  const out = new Float32Array(Math.round(wave.length / 2));
  for (let k = 0; k < out.length; k++) {
    const c = 2 * k - mid;
    const lo = Math.max(0, -c);
    const hi = Math.min(n, wave.length - c);
    let s = 0;
    for (let j = lo; j < hi; j++) s += taps[j] * wave[c + j];
    out[k] = s;
  }
  self.postMessage({ type: "result", id, wave: out }, [out.buffer]);
}

self.onmessage = ({ data }) => {
  if (data.type === "load") {
    queue = queue.then(() => load(data))
      .then((info) => self.postMessage({ type: "loaded", ...info }))
      .catch((err) => self.postMessage({ type: "failed", message: describe(err) }));
  } else if (data.type === "decimate") {
    queue = queue.then(() => decimate(data)).catch((err) => self.postMessage({ type: "error", id: data.id, message: describe(err) }));
  } else if (data.type === "run") {
    queue = queue.then(() => {
      if (!session) throw new Error("the model is not loaded");
      return run(data);
    }).catch((err) => self.postMessage({ type: "error", id: data.id, message: describe(err) }));
  }
};
