// The try-it page: builds a multipart request from the form and either submits it to the async
// jobs API (when config.json names one: the job is followed by polling, can be cancelled and
// is found again after a reload) or streams the NDJSON progress of
// POST /predictions/style_transfer; shows progress, previews, the result and errors.
"use strict";

const $ = (id) => document.getElementById(id);
// max_styles: the served model's limit, from config.json (null: not known, no cap; the
// server's answer then names its limit).
const state = {
  content: null, mask: null, api: "", jobs: "", model: "style_transfer", job: null,
  max_styles: null,
};
const slotsFull = (count) => state.max_styles != null && count >= state.max_styles;
const JOB_KEY = "nst-job";  // localStorage: the job this page follows, kept across reloads

async function loadConfig() {
  try {
    const reply = await fetch("config.json", { cache: "no-store" });
    if (reply.ok) Object.assign(state, await reply.json());
  } catch (_) { /* opened from elsewhere: same origin as the API */ }
  state.api = new URLSearchParams(location.search).get("api") || state.inference || "";
}

function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// --- images: file pickers, drag and drop, samples -----------------------------------------

function showThumb(img, file) {
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);
  img.hidden = false;
}

function wireDrop(zone, input, onFile) {
  input.addEventListener("change", () => input.files[0] && onFile(input.files[0]));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files[0]) onFile(e.dataTransfer.files[0]);
  });
}

function addStyleSlot() {
  const slots = $("styles").children;
  if (slotsFull(slots.length)) return null;
  const slot = $("style-slot").content.firstElementChild.cloneNode(true);
  slot.file = null;
  wireDrop(slot, slot.querySelector(".style-file"), (file) => {
    slot.file = file;
    showThumb(slot.querySelector(".thumb"), file);
  });
  slot.querySelector(".remove").addEventListener("click", () => {
    if ($("styles").children.length > 1) { slot.remove(); numberStyles(); }
  });
  $("styles").appendChild(slot);
  numberStyles();
  return slot;
}

function numberStyles() {
  const slots = [...$("styles").children];
  slots.forEach((slot, i) => {
    const name = i === 0 ? "style" : `style_${i + 1}`;
    slot.dataset.field = name;
    slot.querySelector(".number").textContent = slots.length > 1 ? i + 1 : "";
    slot.querySelector(".weight").hidden = slots.length === 1;
    slot.querySelector(".remove").hidden = slots.length === 1;
  });
  $("add-style").hidden = slotsFull(slots.length);
}

async function useSamples() {
  const load = async (name) => {
    const blob = await (await fetch(`examples/${name}`)).blob();
    return new File([blob], name, { type: blob.type || "image/jpeg" });
  };
  state.content = await load("astronaut.jpg");
  showThumb($("content-thumb"), state.content);
  const slot = $("styles").children[0];
  slot.file = await load("starry_night.jpg");
  showThumb(slot.querySelector(".thumb"), slot.file);
}

// --- the request --------------------------------------------------------------------------

function buildForm() {
  const form = new FormData();
  if (state.content) form.append("content", state.content);
  if (state.mask) form.append("mask", state.mask);
  const slots = [...$("styles").children].filter((slot) => slot.file);
  slots.forEach((slot, i) => form.append(i === 0 ? "style" : `style_${i + 1}`, slot.file));
  if (slots.length > 1) {
    form.append("style_weights", slots.map((s) => s.querySelector(".style-weight").value || "1").join(","));
  }
  for (const name of ["size", "steps", "time_limit", "style_weight", "preserve_color", "style_loss", "average"]) {
    const value = $(name).value.trim();
    if (value !== "") form.append(name, value);
  }
  const steps = parseInt($("steps").value, 10) || 100;
  form.append("preview_every", String(Math.max(1, Math.round(steps / 10))));
  form.append("stream", "true");
  return form;
}

async function stylise(event) {
  event.preventDefault();
  clearError();
  $("result-box").hidden = true;
  $("preview").hidden = true;
  setProgress(0, parseInt($("steps").value, 10) || 1);
  $("stylise").disabled = true;
  $("status").textContent = "Sending…";
  try {
    if (state.jobs) return await submitJob();
    const reply = await fetch(`${state.api}/predictions/${state.model}`, {
      method: "POST", body: buildForm(), headers: authHeaders(),
    });
    if (!reply.ok) return showError(await errorBody(reply), reply.status);
    $("status").textContent = "Waiting for the server…";
    await readStream(reply);
  } catch (err) {
    showError({ message: `The server could not be reached (${err.message}).` });
  } finally {
    $("stylise").disabled = state.job !== null;
  }
}

// --- the async jobs API: submit, follow by long polling, cancel, resume after a reload ---

async function submitJob() {
  const reply = await fetch(`${state.jobs}/v1/jobs`, {
    method: "POST", body: buildForm(), headers: authHeaders(),
  });
  if (reply.status !== 202) return showError(await errorBody(reply), reply.status);
  const job = await reply.json();
  localStorage.setItem(JOB_KEY, job.id);
  await follow(job.id);
}

async function follow(id) {
  state.job = id;
  $("stylise").disabled = true;
  $("cancel").hidden = false;
  $("cancel").disabled = false;
  try {
    for (;;) {
      const reply = await fetch(`${state.jobs}/v1/jobs/${id}?wait=10`, { headers: authHeaders() });
      if (reply.status === 404) { localStorage.removeItem(JOB_KEY); $("status").textContent = ""; return; }
      if (!reply.ok) return showError(await errorBody(reply), reply.status);
      const job = await reply.json();
      showJob(job);
      if (["succeeded", "failed", "cancelled"].includes(job.status)) return await finishJob(job);
    }
  } catch (err) {
    showError({ message: `The jobs API could not be reached (${err.message}).` });
  } finally {
    state.job = null;
    $("cancel").hidden = true;
    $("stylise").disabled = false;
  }
}

function showJob(job) {
  const { step, steps } = job.progress;
  if (job.status === "queued") {
    $("status").textContent = `Queued (${job.queue_position} ahead)…`;
  } else if (job.status === "running") {
    if (steps) setProgress(step, steps);
    $("status").textContent = job.cancel_requested ? "Cancelling…" : `Step ${step} of ${steps || "?"}`;
    if (job.preview_url) showPreview(job.preview_url);
  }
}

async function showPreview(path) {
  const reply = await fetch(`${state.jobs}${path}`, { headers: authHeaders() });
  if (!reply.ok || !state.job) return;
  const old = $("preview").src;
  $("preview").src = URL.createObjectURL(await reply.blob());
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  $("preview").hidden = false;
}

async function finishJob(job) {
  localStorage.removeItem(JOB_KEY);
  if (job.status === "failed") return showError(job.error || {}, job.error && job.error.status);
  if (!job.result) {
    $("progress").hidden = true;
    $("status").textContent = "Cancelled.";
    return;
  }
  const reply = await fetch(`${state.jobs}${job.result.url}`, { headers: authHeaders() });
  if (!reply.ok) return showError(await errorBody(reply), reply.status);
  const blob = await reply.blob();
  showImage(URL.createObjectURL(blob), job.result.content_type, job.result);
  if (job.status === "cancelled") $("status").textContent = "Cancelled: the image so far.";
}

async function cancelJob() {
  if (!state.job) return;
  $("cancel").disabled = true;
  $("status").textContent = "Cancelling…";
  const reply = await fetch(`${state.jobs}/v1/jobs/${state.job}`, {
    method: "DELETE", headers: authHeaders(),
  });
  if (!reply.ok) showError(await errorBody(reply), reply.status);
}

async function errorBody(reply) {
  try { return await reply.json(); } catch (_) { return { message: reply.statusText }; }
}

async function readStream(reply) {
  const reader = reply.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line && handleLine(JSON.parse(line))) return;
    }
    if (done) break;
  }
  if (buffer.trim() && handleLine(JSON.parse(buffer))) return;
  showError({ message: "The stream ended without a result." });
}

// Returns true once the job is over (result or error).
function handleLine(line) {
  if (line.type === "progress") {
    setProgress(line.step, line.steps);
    $("status").textContent = `Step ${line.step} of ${line.steps}`;
    if (line.preview_png) {
      $("preview").src = `data:image/png;base64,${line.preview_png}`;
      $("preview").hidden = false;
    }
    return false;
  }
  if (line.type === "error") { showError(line); return true; }
  if (line.type === "result") { showResult(line); return true; }
  return false;
}

function setProgress(step, steps) {
  const bar = $("progress");
  bar.hidden = false;
  bar.max = steps;
  bar.value = step;
}

function showResult(result) {
  const type = result.content_type || "image/png";
  const bytes = Uint8Array.from(atob(result.image), (c) => c.charCodeAt(0));
  showImage(URL.createObjectURL(new Blob([bytes], { type })), type, result);
}

function showImage(url, type, result) {
  setProgress(result.steps_run, Math.max(result.steps_run, $("progress").max));
  $("result").src = url;
  $("download").href = url;
  $("download").download = `stylised.${type.split("/")[1].replace("jpeg", "jpg")}`;
  $("figures").textContent = `${result.width}×${result.height}, ${result.steps_run} steps, ` +
    `${result.seconds} s` + (result.stopped ? ` (stopped: ${result.stopped})` : "");
  $("result-box").hidden = false;
  $("preview").hidden = true;
  $("status").textContent = "Done.";
}

// --- errors: the server's JSON body, with the field at fault marked -----------------------

function showError(body, status) {
  const field = body.field || null;
  let text = body.message || "Something went wrong.";
  if (field) text = `${field}: ${text}`;
  if (status) text += ` (HTTP ${status}${body.error ? `, ${body.error}` : ""})`;
  $("error").textContent = text;
  $("error").hidden = false;
  $("status").textContent = "";
  $("progress").hidden = true;
  const target = field && (document.querySelector(`.drop[data-field="${field}"]`) || $(field));
  if (target) target.classList.add(target.classList.contains("drop") ? "bad" : "bad-field");
}

function clearError() {
  $("error").hidden = true;
  document.querySelectorAll(".bad, .bad-field").forEach((el) => el.classList.remove("bad", "bad-field"));
}

// --- start --------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  await loadConfig();
  wireDrop($("content-drop"), $("content-file"), (file) => {
    state.content = file;
    showThumb($("content-thumb"), file);
  });
  wireDrop($("mask-drop"), $("mask-file"), (file) => {
    state.mask = file;
    showThumb($("mask-thumb"), file);
    $("clear-mask").hidden = false;
  });
  $("clear-mask").addEventListener("click", () => {
    state.mask = null;
    $("mask-file").value = "";
    $("mask-thumb").hidden = true;
    $("clear-mask").hidden = true;
  });
  addStyleSlot();
  $("add-style").addEventListener("click", addStyleSlot);
  $("use-samples").addEventListener("click", useSamples);
  $("form").addEventListener("submit", stylise);
  $("cancel").addEventListener("click", cancelJob);
  document.body.dataset.ready = "true";
  const pending = state.jobs && localStorage.getItem(JOB_KEY);
  if (pending) {
    $("status").textContent = "Following the job started before the reload…";
    await follow(pending);
  }
});
