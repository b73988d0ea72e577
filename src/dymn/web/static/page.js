// The page: checks what the browser offers, reads model.json, loads the model in its worker, then wires the
// file input (files.js) and the microphone (live.js). Nothing leaves the browser.
import { addFiles, download } from "./files.js";
import { live, startLive, stopLive } from "./live.js";
import { $, fail, loadModel, meta, runModel, seconds, setStatus, showSpeed, speed } from "./model.js";

function ready(info) {
  const m = meta.value;
  document.body.dataset.state = "ready";
  $("model").textContent = `Model ${m.name} (${m.level === "frame" ? "frame-level detector" : "tagger"}, ` +
    `${m.labels.length} classes, ${m.dtype}, ${(info.bytes / 1e6).toFixed(1)} MB), ready.`;
  $("file").disabled = false;
  $("files-hint").textContent = `Files up to ${seconds(m.max_file_seconds)}; clips shorter than ` +
    `${m.clip_seconds} s are zero-padded to it, as \`dymn tag\` does.`;
  if (m.level === "frame") {
    $("live-hint").textContent = "Live detection is not offered for detectors yet: tag files here, or export a " +
      "tagger (mn*, dymn*) for live use.";
  } else {
    $("mic").disabled = false;
    $("live-hint").textContent = `Every ${m.hop_seconds} s the last ${m.window_seconds} s of sound (less at the ` +
      "start, zero-padded) is tagged; the timeline shows the last minute.";
  }
  setStatus("Ready.");
  showSpeed();
}

async function start() {
  document.body.dataset.state = "loading";
  if (typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function") {
    fail("This browser has no WebAssembly (or it is turned off), which the model needs to run here. Use a current " +
      "Chrome, Edge, Firefox or Safari with WebAssembly on, or `dymn tag` on the command line.");
    $("model").textContent = "The model cannot run in this browser.";
    throw new Error("no WebAssembly");
  }
  if (typeof Worker !== "function" || typeof OfflineAudioContext !== "function") {
    fail("This browser lacks Web Workers or Web Audio, which the page needs.");
    throw new Error("no Web Workers or Web Audio");
  }
  try {
    const resp = await fetch("model.json");
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    meta.value = await resp.json();
  } catch (err) {
    fail(`Cannot read model.json (${err.message}): serve this folder with a web server, e.g. \`python -m http.server\`.`);
    $("model").textContent = "No model.";
    throw err;
  }
  setStatus("Loading the model…");
  $("model").textContent = `Loading ${meta.value.name}…`;
  try {
    const info = await loadModel();
    ready(info);
    return info;
  } catch (err) {
    fail(`The model could not be loaded: ${err.message}`);
    $("model").textContent = `${meta.value.name} could not be loaded.`;
    throw err;
  }
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
const readyPromise = start();
readyPromise.catch(() => {});
window.dymn = { meta, ready: readyPromise, run: runModel, speed };
