// SwinIR web page: pick a model and an image, submit a job, poll its tile progress, compare before/after.
// Plain browser JavaScript, no libraries; talks to the same server's /v1 API.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 300;

const state = {
  models: [],
  file: null, // the chosen File
  inputUrl: null, // object URL of the file, for the "before" image
  inputSize: null, // {width, height} when the browser can display the file
  resultUrl: null,
  busy: false,
};

function setState(name) {
  document.body.dataset.state = name; // idle | running | done | failed (tests wait on it)
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function currentModel() {
  return state.models.find((m) => m.name === $("model").value);
}

function describeModel(m) {
  return `${m.name} — ${m.task_label || m.task}${m.task === "sr" || m.task === "photo" ? " ×" + m.scale : ""}`;
}

// A metric value as text: PSNR (psnr, psnr_y, psnrb...) in dB with 2 decimals, SSIM and others with 4.
function formatMetric(metric, value, unit) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "n/a";
  if (!metric.startsWith("psnr")) return value.toFixed(4);
  return value.toFixed(2) + (unit ? " dB" : "");
}

// /v1/models gives {row: {"model": {metric: value}, "<baseline>": {metric: value}}}; each row becomes
// "Set5 x2: 34.87 dB (bicubic 33.67)", with the row's first metric.
function qualityText(quality) {
  const rows = [];
  for (const [row, values] of Object.entries(quality || {})) {
    const model = values && typeof values === "object" ? values.model : null;
    const metric = model && typeof model === "object" ? Object.keys(model)[0] : undefined;
    if (!metric) continue;
    let text = `${row}: ${formatMetric(metric, model[metric], true)}`;
    const baseline = Object.keys(values).find((key) => key !== "model");
    const base = baseline && values[baseline] && typeof values[baseline] === "object" ? values[baseline][metric] : null;
    if (typeof base === "number") text += ` (${baseline} ${formatMetric(metric, base, false)})`;
    rows.push(text);
  }
  return rows.join(" · ");
}

// What a model does with sigma/quality: blind models estimate the level, one-level models have theirs.
function levelText(m) {
  if (!m.level || (m.task !== "denoise" && m.task !== "jpeg")) return "";
  const what = m.task === "denoise" ? "noise σ" : "JPEG quality";
  const [low, high] = m.level;
  return m.blind ? `blind: handles ${what} ${low}–${high} by itself` : `trained for ${what} ${low}`;
}

async function errorDetail(response) {
  // Every API error is {"detail": "one line"}; fall back to the status line.
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
  } catch (_) { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

async function loadModels() {
  const response = await fetch("/v1/models");
  if (!response.ok) {
    showError(`cannot list the models: ${await errorDetail(response)}`);
    return;
  }
  state.models = (await response.json()).models;
  const select = $("model");
  select.replaceChildren(...state.models.map((m) => new Option(describeModel(m), m.name)));
  if (!state.models.length) showError("This server has no models. Start it with --weights FILE.");
  onModelChange();
}

function onModelChange() {
  const m = currentModel();
  // The level fields only where the server accepts them: a model whose trained level is unknown.
  $("sigma-field").hidden = !m || m.task !== "denoise" || m.level != null;
  $("quality-field").hidden = !m || m.task !== "jpeg" || m.level != null;
  $("model-description").textContent = m ? [m.description, levelText(m)].filter(Boolean).join(" · ") : "";
  const measured = m ? qualityText(m.quality) : "";
  $("model-quality").textContent = measured ? `Measured: ${measured}` : "";
  $("model-quality").hidden = !measured;
  updateButton();
}

function updateButton() {
  $("restore").disabled = state.busy || !state.file || !currentModel();
}

function chooseFile(file) {
  if (!file) return;
  showError("");
  if (state.inputUrl) URL.revokeObjectURL(state.inputUrl);
  state.file = file;
  state.inputUrl = URL.createObjectURL(file);
  state.inputSize = null;
  const size = file.size < 1024 ? `${file.size} bytes` : `${(file.size / 1024).toFixed(file.size < 10240 ? 1 : 0)} KB`;
  $("file-info").textContent = `${file.name} (${size})`;
  const probe = new Image();
  probe.onload = () => {
    state.inputSize = { width: probe.naturalWidth, height: probe.naturalHeight };
    $("file-info").textContent = `${file.name} (${size}, ${probe.naturalWidth}×${probe.naturalHeight})`;
  };
  probe.onerror = () => {
    $("file-info").textContent = `${file.name} (${size}; this browser cannot preview it, the server may still read it)`;
  };
  probe.src = state.inputUrl;
  updateButton();
}

function formData() {
  const data = new FormData();
  data.append("image", state.file, state.file.name);
  const m = currentModel();
  data.append("task", m.name);
  data.append("precision", $("precision").value);
  if ($("tile").value) data.append("tile", $("tile").value);
  if (!$("sigma-field").hidden && $("sigma").value) data.append("sigma", $("sigma").value);
  if (!$("quality-field").hidden && $("quality").value) data.append("quality", $("quality").value);
  return data;
}

// The status line of a job: uploading, queued, tiles (model calls) done, or one pass, with the elapsed time.
function progressText(job, seconds) {
  if (job.state === "uploading") return `uploading… ${seconds} s`;
  if (job.state === "queued") return `waiting for a worker (${job.ahead} ahead)… ${seconds} s`;
  if (job.total > 1) return `restoring: ${job.done} of ${job.total} tiles · ${seconds} s`;
  if (job.total === 1) return `restoring the whole image in one pass (no tiles needed) · ${seconds} s`;
  return `decoding and loading the model… ${seconds} s`;
}

// A bar that counts tiles; indeterminate (moving) while there is nothing to count: one pass, or not started.
function showProgress(text, done, total) {
  const bar = $("progress");
  if (total > 1) {
    bar.max = total;
    bar.value = done;
  } else {
    bar.removeAttribute("value"); // indeterminate
  }
  $("status-text").textContent = text;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function runJob() {
  state.busy = true;
  updateButton();
  showError("");
  setState("running");
  $("result").hidden = true; // the previous result belongs to the previous request
  $("status").hidden = false;
  const t0 = performance.now();
  const seconds = () => ((performance.now() - t0) / 1000).toFixed(1);
  let last = { state: "uploading", done: 0, total: 0, ahead: 0 };
  const ticker = setInterval(() => showProgress(progressText(last, seconds()), last.done, last.total), 100);
  try {
    const submitted = await fetch("/v1/jobs", { method: "POST", body: formData() });
    if (!submitted.ok) {
      const retry = submitted.headers.get("Retry-After");
      throw new Error(await errorDetail(submitted) + (retry ? ` (retry in ${retry} s)` : ""));
    }
    let job = await submitted.json();
    while (job.state === "queued" || job.state === "running") {
      last = job;
      await sleep(POLL_MS);
      const polled = await fetch(`/v1/jobs/${job.id}`);
      if (!polled.ok) throw new Error(await errorDetail(polled));
      job = await polled.json();
    }
    if (job.state === "failed") throw new Error(job.detail);
    last = job;
    const response = await fetch(job.result_url);
    if (!response.ok) throw new Error(await errorDetail(response));
    await showResult(job, response, seconds());
    setState("done");
  } catch (err) {
    showError(err.message || String(err));
    setState("failed");
  } finally {
    clearInterval(ticker);
    $("status").hidden = true;
    state.busy = false;
    updateButton();
  }
}

async function showResult(job, response, totalSeconds) {
  const blob = await response.blob();
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  const after = $("result-image");
  const before = $("before-image");
  after.src = state.resultUrl;
  before.src = state.inputUrl;
  await Promise.all([after.decode(), before.decode().catch(() => {})]); // the browser may not show the input
  const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  $("download").href = state.resultUrl;
  $("download").download = name ? name[1] : "restored.png";
  const input = state.inputSize ? `${state.inputSize.width}×${state.inputSize.height} → ` : "";
  const compute = Number(response.headers.get("X-SwinIR-Seconds") || 0).toFixed(2);
  const notice = response.headers.get("X-SwinIR-Notice");
  const precision = response.headers.get("X-SwinIR-Precision");
  $("result-info").textContent = `${input}${after.naturalWidth}×${after.naturalHeight} · ` +
    `model ${response.headers.get("X-SwinIR-Model")}${precision ? " (" + precision + ")" : ""} · ` +
    `${compute} s compute, ${totalSeconds} s total` + (notice ? ` · ${notice}` : "");
  $("result").hidden = false;
  layout();
  setSplit($("slider").value);
}

function layout() {
  // Both images share the compare box, sized from the result: the same zoom for before and after.
  const after = $("result-image");
  if (!after.naturalWidth) return;
  const zoom = $("zoom").value;
  const room = $("viewport").clientWidth;
  const factor = zoom === "fit" ? Math.min(1, room / after.naturalWidth) : Number(zoom);
  // Magnified, both show their pixels as blocks; the SR input always does, being smaller than the result.
  after.classList.toggle("nearest", factor > 1);
  $("before-image").classList.toggle("nearest", factor > 1 || after.naturalWidth > $("before-image").naturalWidth);
  $("compare").style.width = `${Math.round(after.naturalWidth * factor)}px`;
  $("compare").style.height = `${Math.round(after.naturalHeight * factor)}px`;
}

function setSplit(percent) {
  $("result-image").style.clipPath = `inset(0 0 0 ${percent}%)`;
  $("divider").style.left = `${percent}%`;
}

function wireDropZone() {
  const drop = $("drop");
  const input = $("file");
  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
  });
  input.addEventListener("change", () => chooseFile(input.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    chooseFile(e.dataTransfer.files[0]);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  wireDropZone();
  $("model").addEventListener("change", onModelChange);
  $("restore").addEventListener("click", runJob);
  $("zoom").addEventListener("change", layout);
  $("slider").addEventListener("input", (e) => setSplit(e.target.value));
  window.addEventListener("resize", layout);
  loadModels().catch((err) => showError(`cannot reach the server: ${err.message}`));
});
