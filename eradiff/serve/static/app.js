// eradiff serve: paint a mask over a photo, erase on the server, compare, download.
// Plain browser JavaScript, no build step. The photo is sent as the original file bytes and the
// mask at the photo's full resolution, so the result is never downsampled.
"use strict";

const MASK_COLOUR = "rgb(255, 48, 96)";
const $ = (id) => document.getElementById(id);

const ui = {
  imageInput: $("image-input"), maskInput: $("mask-input"), imageInfo: $("image-info"),
  modelInfo: $("model-info"), status: $("status"),
  brush: $("tool-brush"), eraser: $("tool-eraser"), size: $("size"), sizeOut: $("size-out"),
  undo: $("undo"), redo: $("redo"), clear: $("clear"),
  steps: $("opt-steps"), sampler: $("opt-sampler"), strength: $("opt-strength"), strengthOut: $("strength-out"), seed: $("opt-seed"),
  sra: $("opt-sra"), dilate: $("opt-dilate"), format: $("opt-format"),
  erase: $("erase"), cancel: $("cancel"), progress: $("progress"), progressText: $("progress-text"),
  resultActions: $("result-actions"), resultInfo: $("result-info"), download: $("download"), keep: $("keep"),
  back: $("back"), reuseSeed: $("reuse-seed"), revert: $("revert"),
  stage: $("stage"), drop: $("drop"), editor: $("editor"), photo: $("photo"), mask: $("mask"), cursor: $("cursor"),
  compare: $("compare"), before: $("before"), after: $("after"), handle: $("handle"), split: $("split"),
};

// The page's state; `window.eradiffPage` exposes it to tests and the console.
const page = {
  limits: null,
  current: null, // {blob, name, url, width, height}
  versions: [], // earlier {blob, name} (Previous version)
  ops: [], // mask operations, replayed on undo: {type: "stroke", mode, size, points} | {type: "clear"} | {type: "mask", canvas}
  redo: [],
  tool: "brush",
  drawing: null,
  job: null,
  result: null, // {blob, url, filename, seed, report}
  resultBase64: async () => {
    const bytes = new Uint8Array(await page.result.blob.arrayBuffer());
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(binary);
  },
};
window.eradiffPage = page;

function setState(state) {
  document.body.dataset.state = state;
  const working = state === "working";
  const hasImage = page.current !== null;
  ui.erase.disabled = working || !hasImage || state === "result";
  ui.erase.hidden = working;
  ui.cancel.hidden = !working;
  ui.progress.hidden = !working;
  for (const el of [ui.brush, ui.eraser, ui.maskInput]) el.disabled = state !== "editing";
  ui.imageInput.disabled = working;
  ui.resultActions.hidden = state !== "result";
  ui.editor.hidden = !hasImage || state === "result";
  ui.compare.hidden = ui.split.hidden = state !== "result";
  ui.drop.hidden = hasImage;
  ui.revert.hidden = working || page.versions.length === 0;
  updateUndo();
  layout();
}

function say(text, error = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle("error", error);
}

// ---- model info -------------------------------------------------------------------------------

async function loadModelInfo() {
  try {
    const r = await fetch("/api/model");
    const info = await r.json();
    page.limits = info.limits;
    const size = info.native_size ? ` · ${info.native_size}px` : "";
    ui.modelInfo.textContent = `model ${info.name} · ${info.family}${size} · ${info.backend} on ${info.device}`;
    const d = info.defaults;
    ui.steps.value = d.steps;
    ui.sampler.value = d.sampler;
    ui.strength.value = d.strength;
    ui.strengthOut.textContent = Number(d.strength).toFixed(2);
    ui.sra.checked = d.sra;
    ui.dilate.value = d.dilate;
    ui.seed.value = d.seed; // 0, as the command line; cleared or -1 = a random seed
  } catch (err) {
    ui.modelInfo.textContent = "server not reachable";
  }
}

// ---- opening images --------------------------------------------------------------------------

async function openImage(blob, name) {
  if (page.limits && blob.size > page.limits.max_upload_bytes) {
    say(`${name}: ${(blob.size / 2 ** 20).toFixed(1)} MiB is over the server's ${(page.limits.max_upload_bytes / 2 ** 20).toFixed(0)} MiB limit`, true);
    return false;
  }
  const url = URL.createObjectURL(blob);
  const img = new Image();
  img.src = url;
  try {
    await img.decode();
  } catch (err) {
    URL.revokeObjectURL(url);
    say(`${name}: this browser cannot display the file (TIFF?); convert it to PNG or JPEG`, true);
    return false;
  }
  const width = img.naturalWidth, height = img.naturalHeight;
  if (page.limits && width * height > page.limits.max_pixels) {
    URL.revokeObjectURL(url);
    say(`${name}: ${width}×${height} is over the server's ${(page.limits.max_pixels / 1e6).toFixed(0)} MP limit`, true);
    return false;
  }
  if (page.current) URL.revokeObjectURL(page.current.url);
  page.current = {blob, name, url, width, height};
  ui.photo.src = url;
  ui.before.src = url;
  ui.mask.width = width;
  ui.mask.height = height;
  page.ops = [];
  page.redo = [];
  render();
  ui.imageInfo.textContent = `${name} · ${width}×${height} · ${(blob.size / 1024).toFixed(0)} KiB`;
  say("Paint over what to erase, then press Erase.");
  setState("editing");
  return true;
}

async function openMaskFile(blob) {
  if (!page.current) return;
  const {width: W, height: H} = page.current;
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);
  } catch (err) {
    say("the mask file is not an image this browser can read", true);
    return;
  }
  // the server's rule: one scale factor must bring both sides within 1 px
  const lo = Math.max((W - 1) / bitmap.width, (H - 1) / bitmap.height);
  const hi = Math.min((W + 1) / bitmap.width, (H + 1) / bitmap.height);
  if (lo > hi) {
    say(`the mask is ${bitmap.width}×${bitmap.height} but the image ${W}×${H}: the aspect ratios differ`, true);
    return;
  }
  const c = document.createElement("canvas");
  c.width = W;
  c.height = H;
  const ctx = c.getContext("2d", {willReadFrequently: true});
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(bitmap, 0, 0, W, H);
  const data = ctx.getImageData(0, 0, W, H);
  const px = data.data;
  let useAlpha = false;
  for (let i = 3; i < px.length; i += 4) if (px[i] < 255) { useAlpha = true; break; }
  const [r, g, b] = MASK_COLOUR.match(/\d+/g).map(Number);
  for (let i = 0; i < px.length; i += 4) {
    const v = useAlpha ? px[i + 3] : 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
    const on = v > 127;
    px[i] = r; px[i + 1] = g; px[i + 2] = b; px[i + 3] = on ? 255 : 0;
  }
  ctx.putImageData(data, 0, 0);
  pushOp({type: "mask", canvas: c});
  say("Mask loaded; paint or erase to adjust it.");
}

// ---- painting --------------------------------------------------------------------------------

const maskCtx = ui.mask.getContext("2d");

function applyOp(ctx, op) {
  if (op.type === "clear") {
    ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height);
  } else if (op.type === "mask") {
    ctx.globalCompositeOperation = "source-over";
    ctx.drawImage(op.canvas, 0, 0);
  } else {
    drawSegment(ctx, op, 0);
  }
}

function drawSegment(ctx, op, from) {
  ctx.globalCompositeOperation = op.mode === "erase" ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = MASK_COLOUR;
  ctx.lineWidth = op.size;
  ctx.lineCap = ctx.lineJoin = "round";
  const p = op.points;
  if (p.length === 1) {
    ctx.beginPath();
    ctx.arc(p[0][0], p[0][1], op.size / 2, 0, 2 * Math.PI);
    ctx.fill();
  } else {
    ctx.beginPath();
    ctx.moveTo(p[Math.max(0, from - 1)][0], p[Math.max(0, from - 1)][1]);
    for (let i = Math.max(1, from); i < p.length; i++) ctx.lineTo(p[i][0], p[i][1]);
    ctx.stroke();
  }
  ctx.globalCompositeOperation = "source-over";
}

function render() {
  maskCtx.clearRect(0, 0, ui.mask.width, ui.mask.height);
  for (const op of page.ops) applyOp(maskCtx, op);
  updateUndo();
}

function pushOp(op) {
  page.ops.push(op);
  page.redo = [];
  render();
}

function updateUndo() {
  const editing = document.body.dataset.state === "editing";
  ui.undo.disabled = !editing || page.ops.length === 0;
  ui.redo.disabled = !editing || page.redo.length === 0;
  ui.clear.disabled = !editing || page.ops.length === 0;
}

function scale() {
  return ui.mask.width / ui.mask.getBoundingClientRect().width;
}

function toImage(event) {
  const rect = ui.mask.getBoundingClientRect();
  const s = ui.mask.width / rect.width;
  return [(event.clientX - rect.left) * s, (event.clientY - rect.top) * s];
}

function moveCursor(event) {
  const rect = ui.editor.getBoundingClientRect();
  const d = Number(ui.size.value);
  Object.assign(ui.cursor.style, {
    left: `${event.clientX - rect.left}px`, top: `${event.clientY - rect.top}px`, width: `${d}px`, height: `${d}px`,
  });
  ui.cursor.classList.toggle("eraser", page.tool === "eraser");
  ui.cursor.hidden = false;
}

ui.mask.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 || document.body.dataset.state !== "editing") return;
  ui.mask.setPointerCapture(event.pointerId);
  const op = {type: "stroke", mode: page.tool === "eraser" ? "erase" : "paint", size: Number(ui.size.value) * scale(),
    points: [toImage(event)]};
  page.drawing = op;
  drawSegment(maskCtx, op, 0);
});

ui.mask.addEventListener("pointermove", (event) => {
  moveCursor(event);
  const op = page.drawing;
  if (!op) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  const from = op.points.length;
  for (const e of events.length ? events : [event]) op.points.push(toImage(e));
  drawSegment(maskCtx, op, from);
});

function endStroke() {
  if (!page.drawing) return;
  const op = page.drawing;
  page.drawing = null;
  page.ops.push(op);
  page.redo = [];
  render();
}

ui.mask.addEventListener("pointerup", endStroke);
ui.mask.addEventListener("pointercancel", endStroke);
ui.mask.addEventListener("pointerleave", () => { ui.cursor.hidden = true; });

function setTool(tool) {
  page.tool = tool;
  ui.brush.classList.toggle("active", tool === "brush");
  ui.eraser.classList.toggle("active", tool === "eraser");
  ui.brush.setAttribute("aria-pressed", String(tool === "brush"));
  ui.eraser.setAttribute("aria-pressed", String(tool === "eraser"));
}

function undo() {
  if (!page.ops.length || document.body.dataset.state !== "editing") return;
  page.redo.push(page.ops.pop());
  render();
}

function redo() {
  if (!page.redo.length || document.body.dataset.state !== "editing") return;
  page.ops.push(page.redo.pop());
  render();
}

ui.brush.addEventListener("click", () => setTool("brush"));
ui.eraser.addEventListener("click", () => setTool("eraser"));
ui.undo.addEventListener("click", undo);
ui.redo.addEventListener("click", redo);
ui.clear.addEventListener("click", () => { if (page.ops.length) pushOp({type: "clear"}); });
ui.size.addEventListener("input", () => { ui.sizeOut.textContent = ui.size.value; });
ui.strength.addEventListener("input", () => { ui.strengthOut.textContent = Number(ui.strength.value).toFixed(2); });

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement && event.target.type !== "range") return;
  const key = event.key.toLowerCase();
  if ((event.ctrlKey || event.metaKey) && key === "z") {
    event.preventDefault();
    event.shiftKey ? redo() : undo();
  } else if ((event.ctrlKey || event.metaKey) && key === "y") {
    event.preventDefault();
    redo();
  } else if (key === "b") setTool("brush");
  else if (key === "e") setTool("eraser");
  else if (key === "[" || key === "]") {
    ui.size.value = Number(ui.size.value) + (key === "]" ? 4 : -4);
    ui.sizeOut.textContent = ui.size.value;
  }
});

function maskIsEmpty() {
  const {width: W, height: H} = ui.mask;
  const data = maskCtx.getImageData(0, 0, W, H).data;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 127) return false;
  return true;
}

// The mask as a black/white PNG at the photo's full resolution (white = erase).
function maskBlob() {
  const {width: W, height: H} = ui.mask;
  const white = document.createElement("canvas");
  white.width = W;
  white.height = H;
  const w = white.getContext("2d");
  w.drawImage(ui.mask, 0, 0);
  w.globalCompositeOperation = "source-in";
  w.fillStyle = "#fff";
  w.fillRect(0, 0, W, H);
  const out = document.createElement("canvas");
  out.width = W;
  out.height = H;
  const o = out.getContext("2d");
  o.fillStyle = "#000";
  o.fillRect(0, 0, W, H);
  o.drawImage(white, 0, 0);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

// ---- erasing ---------------------------------------------------------------------------------

function options() {
  const o = {
    steps: Number(ui.steps.value), sampler: ui.sampler.value, strength: Number(ui.strength.value), sra: ui.sra.checked,
    dilate: Number(ui.dilate.value),
  };
  const seed = ui.seed.value.trim();
  o.seed = seed === "" ? -1 : Number(seed);
  if (ui.format.value) o.format = ui.format.value;
  return o;
}

async function errorText(response) {
  try {
    const body = await response.json();
    let text = body.error || response.statusText;
    if (response.status === 503 && response.headers.get("Retry-After")) {
      text += ` (retry in ${response.headers.get("Retry-After")} s)`;
    }
    return text;
  } catch (err) {
    return `${response.status} ${response.statusText}`;
  }
}

function showProgress(snap) {
  if (snap.state === "queued") {
    ui.progressText.textContent = `waiting in the queue (position ${snap.position ?? "?"})`;
    ui.progress.removeAttribute("value");
  } else if (snap.state === "running" && snap.steps) {
    const done = (snap.window - 1 + snap.step / snap.steps) / snap.windows;
    ui.progress.value = done;
    const windows = snap.windows > 1 ? ` · window ${snap.window}/${snap.windows}` : "";
    ui.progressText.textContent = `denoising step ${snap.step}/${snap.steps}${windows}`;
  } else if (snap.state === "running") {
    ui.progressText.textContent = "starting…";
  }
}

// Follow a job with Server-Sent Events (polling if the stream cannot be opened); resolves when done.
function follow(job) {
  return new Promise((resolve, reject) => {
    const finish = (snap) => {
      if (snap.state === "done") resolve(snap);
      else reject(new Error(snap.error ? snap.error.message : `the job was ${snap.state}`));
    };
    const poll = async () => {
      try {
        const r = await fetch(`/api/jobs/${job.id}`);
        if (!r.ok) return reject(new Error(await errorText(r)));
        const snap = await r.json();
        showProgress(snap);
        if (["done", "error", "cancelled"].includes(snap.state)) finish(snap);
        else setTimeout(poll, 300);
      } catch (err) {
        reject(err);
      }
    };
    const events = new EventSource(job.events);
    events.onmessage = (message) => {
      const snap = JSON.parse(message.data);
      showProgress(snap);
      if (["done", "error", "cancelled"].includes(snap.state)) {
        events.close();
        finish(snap);
      }
    };
    events.onerror = () => {
      if (events.readyState === EventSource.CLOSED) poll();
    };
  });
}

async function runErase() {
  if (!page.current || document.body.dataset.state !== "editing") return;
  if (maskIsEmpty()) {
    say("The mask is empty: paint over what to erase first.", true);
    return;
  }
  setState("working");
  say("Erasing…");
  ui.progress.value = 0;
  ui.progressText.textContent = "uploading…";
  try {
    const form = new FormData();
    form.append("image", page.current.blob, page.current.name);
    form.append("mask", await maskBlob(), "mask.png");
    form.append("options", JSON.stringify(options()));
    const r = await fetch("/api/jobs", {method: "POST", body: form});
    if (!r.ok) throw new Error(await errorText(r));
    page.job = await r.json();
    const snap = await follow(page.job);
    const res = await fetch(page.job.result);
    if (!res.ok) throw new Error(await errorText(res));
    const blob = await res.blob();
    showResult(blob, snap);
  } catch (err) {
    say(err.message, true);
    setState("editing");
  } finally {
    page.job = null;
    ui.progressText.textContent = "";
  }
}

function showResult(blob, snap) {
  if (page.result) URL.revokeObjectURL(page.result.url);
  const url = URL.createObjectURL(blob);
  page.result = {blob, url, filename: snap.filename, seed: snap.seed, report: snap.report};
  ui.after.src = url;
  ui.after.onerror = () => say("Done; this browser cannot display the result format; download it.", true);
  ui.download.href = url;
  ui.download.download = snap.filename;
  const t = snap.timings || {};
  const seconds = (t.queue || 0) + (t.erase || 0) + (t.encode || 0);
  const windows = snap.report ? snap.report.windows.length : 0;
  ui.resultInfo.textContent = `seed ${snap.seed} · ${snap.steps} steps · ${windows} window${windows === 1 ? "" : "s"} · ${seconds.toFixed(1)} s`;
  setSplit(50);
  say(`Done: drag across the image to compare. ${snap.warnings && snap.warnings.length ? snap.warnings.join("; ") : ""}`);
  setState("result");
}

async function cancel() {
  if (page.job) await fetch(`/api/jobs/${page.job.id}`, {method: "DELETE"});
}

async function keepEditing() {
  const {blob} = page.result;
  page.versions.push({blob: page.current.blob, name: page.current.name});
  await openImage(blob, page.current.name);
  say("Working on the result: paint what else to erase.");
}

async function revert() {
  const previous = page.versions.pop();
  if (previous) await openImage(previous.blob, previous.name);
}

ui.erase.addEventListener("click", runErase);
ui.cancel.addEventListener("click", cancel);
ui.keep.addEventListener("click", keepEditing);
ui.back.addEventListener("click", () => { setState("editing"); say("Adjust the mask or options and erase again."); });
ui.reuseSeed.addEventListener("click", () => { if (page.result) ui.seed.value = page.result.seed; });
ui.revert.addEventListener("click", revert);

// ---- before/after comparison -----------------------------------------------------------------

function setSplit(percent) {
  const p = Math.min(100, Math.max(0, percent));
  ui.split.value = p;
  ui.before.style.clipPath = `inset(0 ${100 - p}% 0 0)`;
  ui.handle.style.left = `${p}%`;
}

function splitFromPointer(event) {
  const rect = ui.compare.getBoundingClientRect();
  setSplit(((event.clientX - rect.left) / rect.width) * 100);
}

ui.compare.addEventListener("pointerdown", (event) => {
  ui.compare.setPointerCapture(event.pointerId);
  splitFromPointer(event);
});
ui.compare.addEventListener("pointermove", (event) => { if (event.buttons & 1) splitFromPointer(event); });
ui.split.addEventListener("input", () => setSplit(Number(ui.split.value)));

// ---- layout: fit the photo into the stage, keeping its aspect ---------------------------------

function layout() {
  if (!page.current) return;
  const stage = ui.stage.getBoundingClientRect();
  const room = {w: stage.width - 32, h: stage.height - 32 - (ui.split.hidden ? 0 : 40)};
  const s = Math.min(room.w / page.current.width, room.h / page.current.height, 1);
  const w = Math.max(1, Math.floor(page.current.width * s)), h = Math.max(1, Math.floor(page.current.height * s));
  for (const el of [ui.editor, ui.compare]) Object.assign(el.style, {width: `${w}px`, height: `${h}px`});
}

window.addEventListener("resize", layout);

// ---- files: picker, drop, paste --------------------------------------------------------------

ui.imageInput.addEventListener("change", async () => {
  const file = ui.imageInput.files[0];
  ui.imageInput.value = "";
  if (file) {
    page.versions = [];
    await openImage(file, file.name);
  }
});

ui.maskInput.addEventListener("change", async () => {
  const file = ui.maskInput.files[0];
  ui.maskInput.value = "";
  if (file) await openMaskFile(file);
});

window.addEventListener("dragover", (event) => {
  event.preventDefault();
  document.body.classList.add("dragging");
});
window.addEventListener("dragleave", (event) => {
  if (event.relatedTarget === null) document.body.classList.remove("dragging");
});
window.addEventListener("drop", async (event) => {
  event.preventDefault();
  document.body.classList.remove("dragging");
  if (document.body.dataset.state === "working") return;
  const file = [...event.dataTransfer.files].find((f) => f.type.startsWith("image/")) || event.dataTransfer.files[0];
  if (file) {
    page.versions = [];
    await openImage(file, file.name);
  }
});
window.addEventListener("paste", async (event) => {
  if (document.body.dataset.state === "working") return;
  const item = [...event.clipboardData.items].find((i) => i.kind === "file" && i.type.startsWith("image/"));
  if (item) {
    const file = item.getAsFile();
    page.versions = [];
    await openImage(file, file.name || "pasted.png");
  }
});

loadModelInfo();
setState("empty");
