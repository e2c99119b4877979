// DCGAN studio page: plain JavaScript, no libraries. Talks to the studio's JSON API (/api/...), which calls the
// model server over gRPC. Every face on the page is {z, png, ...}: the z it was drawn from and its PNG (data URL).
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  config: null,
  target: { model: "dcgan", label: "" },
  serving: null,           // {model, version, z_dim, image_shape} of the last answer
  faces: [],               // the grid
  kept: [],
  selected: null,          // the face picked (the sliders move away from it)
  current: null,           // the face shown in the inspector: selected + slider moves
  walk: { a: null, b: null },
  groups: { a: [], b: [], c: [], with: [], without: [] },
  directions: [],          // [{name, kind: "attribute"|"custom", vector?, info}]
  amounts: {},
  amountRange: [-3, 3],
  down: false,
  pollTimer: null,
  nextId: 1,
};

class ApiError extends Error {
  constructor(code, message, status, field) {
    super(message);
    this.code = code; this.status = status; this.field = field;
  }
}

// -- API ----------------------------------------------------------------------------------------------------------
function targetFields() {
  return { model: state.target.model, label: state.target.label };
}

function targetQuery() {
  const q = new URLSearchParams({ model: state.target.model, label: state.target.label });
  return q.toString();
}

async function api(path, body) {
  const options = body === undefined ? { method: "GET" } : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...targetFields(), ...body }),
  };
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new ApiError("studio_unreachable", "The studio backend is not answering (is `dcgan studio` still running?).", 0);
  }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const err = (data && data.error) || { code: "http_" + response.status, message: response.statusText };
    throw new ApiError(err.code, err.message, response.status, err.field);
  }
  if (data && data.version !== undefined && data.z_dim !== undefined) noteServing(data);
  return data;
}

function isDown(err) {
  return err instanceof ApiError && (err.status === 503 || err.status === 504 || err.status === 0 ||
    err.code === "model_server_unavailable" || err.code === "studio_unreachable");
}

function showError(section, err) {
  const box = $("error-" + section);
  if (isDown(err)) {
    setDown(err);
    if (box) { box.hidden = false; box.textContent = "Not done: the model server is unavailable (see above)."; }
    return;
  }
  if (box) { box.hidden = false; box.textContent = err.message || String(err); }
  else console.error(err);
}

function clearError(section) {
  const box = $("error-" + section);
  if (box) { box.hidden = true; box.textContent = ""; }
}

async function busy(element, work) {
  element.setAttribute("aria-busy", "true");
  try { return await work(); } finally { element.setAttribute("aria-busy", "false"); }
}

// -- status and the down state -----------------------------------------------------------------------------------
function noteServing(data) {
  const changed = !state.serving || state.serving.version !== data.version || state.serving.model !== data.model;
  state.serving = { model: data.model, version: data.version, z_dim: data.z_dim, image_shape: data.image_shape };
  if (state.down) setUp();
  renderStatus();
  if (changed) loadDirections();
}

function renderStatus() {
  const pill = $("status");
  if (state.down) {
    pill.className = "pill down";
    pill.textContent = "model server down";
    return;
  }
  if (!state.serving) { pill.className = "pill"; pill.textContent = "connecting…"; return; }
  const s = state.serving;
  const shape = s.image_shape ? `${s.image_shape[0]}×${s.image_shape[1]}` : "";
  const label = state.target.label ? ` (${state.target.label})` : " (latest)";
  pill.className = "pill ok";
  pill.textContent = `${s.model} version ${s.version}${label} · ${shape} · z ${s.z_dim}`;
}

function setDown(err) {
  state.down = true;
  $("banner").hidden = false;
  $("banner-title").textContent = err.code === "studio_unreachable" ? "Studio unavailable" : "Model server unavailable";
  $("banner-text").textContent = err.message + " Retrying every 5 s.";
  renderStatus();
  schedulePoll(5000);
}

function setUp() {
  state.down = false;
  $("banner").hidden = true;
  for (const s of ["grid", "walk", "arith", "custom", "z", "move"]) {
    const box = $("error-" + s);
    if (box && box.textContent.startsWith("Not done: the model server")) clearError(s);
  }
  renderStatus();
  schedulePoll(15000);
}

function schedulePoll(ms) {
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(pollStatus, ms);
}

async function pollStatus() {
  const wasDown = state.down;
  try {
    const s = await api("/api/status?" + targetQuery());
    noteServing(s.serving);
    setUp();
    if (wasDown && state.faces.length === 0) generateGrid();
  } catch (err) {
    if (isDown(err)) setDown(err);
    else { showError("grid", err); schedulePoll(15000); }
  }
}

// -- faces --------------------------------------------------------------------------------------------------------
function makeFace(data, source) {
  return { id: state.nextId++, z: data.z, png: data.png, seed: data.seed, source,
           version: state.serving ? state.serving.version : null };
}

function faceCaption(face) {
  return face.seed !== undefined && face.seed !== null ? `seed ${face.seed}` : face.source;
}

function faceButton(face, { onRemove, small } = {}) {
  const el = document.createElement("button");
  el.type = "button";
  el.className = "face" + (state.selected && state.selected.id === face.id ? " selected" : "");
  el.dataset.faceId = face.id;
  el.setAttribute("data-testid", "face");
  if (face.seed !== undefined && face.seed !== null) el.dataset.seed = face.seed;
  el.title = faceCaption(face) + " — click to select";
  const img = document.createElement("img");
  img.src = face.png;
  img.alt = "generated face, " + faceCaption(face);
  img.decoding = "sync";
  el.appendChild(img);
  if (!small) {
    const cap = document.createElement("span");
    cap.className = "cap";
    cap.textContent = faceCaption(face);
    el.appendChild(cap);
  }
  el.addEventListener("click", () => select(face));
  if (onRemove) {
    const x = document.createElement("span");
    x.className = "remove button";
    x.textContent = "×";
    x.title = "remove";
    x.setAttribute("role", "button");
    x.addEventListener("click", (e) => { e.stopPropagation(); onRemove(face); });
    el.appendChild(x);
  }
  return el;
}

function renderFaces(container, faces, options) {
  container.replaceChildren(...faces.map((f) => faceButton(f, options)));
}

async function generateGrid() {
  clearError("grid");
  const seed = Math.max(0, Math.floor(Number($("seed").value) || 0));
  const n = Number($("count").value);
  $("seed").value = seed;
  await busy($("grid"), async () => {
    try {
      const data = await api("/api/generate", { seed, n });
      state.faces = data.faces.map((f) => makeFace(f, `seed ${f.seed}`));
      renderFaces($("grid"), state.faces);
    } catch (err) { showError("grid", err); }
  });
}

function renderKept() {
  $("kept-wrap").hidden = state.kept.length === 0;
  renderFaces($("kept"), state.kept, { onRemove: (f) => { state.kept = state.kept.filter((k) => k.id !== f.id); renderKept(); } });
}

// -- inspector ----------------------------------------------------------------------------------------------------
function select(face) {
  state.selected = face;
  state.amounts = {};
  renderSliders();
  show(face);
  for (const el of document.querySelectorAll(".face.selected")) el.classList.remove("selected");
  for (const el of document.querySelectorAll(`.face[data-face-id="${face.id}"]`)) el.classList.add("selected");
}

function show(face) {
  state.current = face;
  $("inspector-empty").hidden = true;
  $("inspector-body").hidden = false;
  $("face-big").src = face.png;
  $("face-big").alt = "selected face, " + faceCaption(face);
  $("face-caption").textContent = faceCaption(face) + (face.version ? ` · version ${face.version}` : "");
  const name = (face.seed !== undefined && face.seed !== null ? `seed-${face.seed}` : `face-${face.id}`);
  $("download").href = face.png;
  $("download").download = `dcgan-${name}.png`;
  $("z-json").value = JSON.stringify(face.z);
  drawZ(face.z);
  clearError("z");
}

function drawZ(z) {
  const canvas = $("z-map");
  const cols = Math.ceil(Math.sqrt(z.length));
  const rows = Math.ceil(z.length / cols);
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(cols, rows);
  for (let i = 0; i < cols * rows; i++) {
    let r = 245, g = 246, b = 248;
    if (i < z.length) {
      const v = Math.max(-1, Math.min(1, z[i] / 3));
      if (v >= 0) { r = 255 - 60 * v; g = 255 - 215 * v; b = 255 - 212 * v; }
      else { r = 255 + 219 * v; g = 255 + 169 * v; b = 255 + 55 * v; }
    }
    image.data.set([r, g, b, 255], i * 4);
  }
  ctx.putImageData(image, 0, 0);
  canvas.dataset.cols = cols;
  let norm = 0, lo = 0, hi = 0;
  z.forEach((v, i) => { norm += v * v; if (v < z[lo]) lo = i; if (v > z[hi]) hi = i; });
  $("z-stats").textContent = `${z.length} values · |z| = ${Math.sqrt(norm).toFixed(2)} · min ${z[lo].toFixed(2)} (z[${lo}]) · max ${z[hi].toFixed(2)} (z[${hi}])`;
}

function zValueAt(event) {
  const canvas = $("z-map");
  const z = state.current && state.current.z;
  if (!z) return;
  const cols = Number(canvas.dataset.cols);
  const rect = canvas.getBoundingClientRect();
  const x = Math.floor((event.clientX - rect.left) / rect.width * cols);
  const y = Math.floor((event.clientY - rect.top) / rect.height * Math.ceil(z.length / cols));
  const i = y * cols + x;
  canvas.title = i >= 0 && i < z.length ? `z[${i}] = ${z[i]}` : "";
}

function parseZ(text) {
  let value;
  try { value = JSON.parse(text); } catch (e) { throw new Error("That is not JSON: paste a list of numbers like [0.12, -1.3, …]."); }
  if (value && !Array.isArray(value) && Array.isArray(value.z)) value = value.z;
  if (Array.isArray(value) && value.length === 1 && Array.isArray(value[0])) value = value[0];
  if (!Array.isArray(value)) throw new Error("A z is a JSON list of numbers.");
  const dim = state.serving ? state.serving.z_dim : null;
  if (dim && value.length !== dim) throw new Error(`This z has ${value.length} values; the model takes ${dim}.`);
  value.forEach((v, i) => {
    if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`z[${i}] is not a finite number.`);
  });
  return value;
}

async function renderPastedZ() {
  clearError("z");
  let z;
  try { z = parseZ($("z-json").value); } catch (e) { showError("z", e); return; }
  await busy($("inspector"), async () => {
    try {
      const data = await api("/api/images", { z });
      select(makeFace(data.faces[0], "pasted z"));
    } catch (err) { showError("z", err); }
  });
}

async function copyZ() {
  const text = $("z-json").value;
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    $("z-json").select();
    document.execCommand("copy");
  }
  $("copied").textContent = "copied";
  setTimeout(() => { $("copied").textContent = ""; }, 1500);
}

function downloadBig() {
  const face = state.current;
  if (!face) return;
  const img = new Image();
  img.onload = () => {
    const canvas = document.createElement("canvas");
    canvas.width = img.width * 8;
    canvas.height = img.height * 8;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    canvas.toBlob((blob) => {
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = $("download").download.replace(".png", "-x8.png");
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 5000);
    }, "image/png");
  };
  img.src = face.png;
}

// -- walk ----------------------------------------------------------------------------------------------------------
function renderSlot(slot) {
  const face = state.walk[slot];
  const el = $("walk-" + slot);
  if (!face) return;
  const img = document.createElement("img");
  img.src = face.png;
  img.alt = `walk ${slot.toUpperCase()}: ${faceCaption(face)}`;
  img.title = faceCaption(face);
  el.replaceChildren(img);
}

async function walk() {
  clearError("walk");
  const { a, b } = state.walk;
  if (!a || !b) { showError("walk", new Error("Pick two faces first: select one and press “Walk from here”, another and “Walk to here”.")); return; }
  const steps = Number($("steps").value);
  const method = $("method").value;
  await busy($("strip"), async () => {
    try {
      const data = await api("/api/interpolate", { z0: a.z, z1: b.z, steps, method });
      const frames = data.frames.map((f) => makeFace(f, `${method} t=${f.t.toFixed(2)}`));
      renderFaces($("strip"), frames);
    } catch (err) { showError("walk", err); }
  });
}

// -- arithmetic and custom directions ----------------------------------------------------------------------------
function renderGroup(name) {
  renderFaces($("group-" + name), state.groups[name], {
    small: true,
    onRemove: (f) => { state.groups[name] = state.groups[name].filter((g) => g.id !== f.id); renderGroup(name); },
  });
}

function addToGroup(name) {
  const face = state.current;
  if (!face) return;
  const limit = state.config ? state.config.limits.max_group : 16;
  const section = name === "with" || name === "without" ? "custom" : "arith";
  clearError(section);
  if (state.groups[name].length >= limit) { showError(section, new Error(`At most ${limit} faces per group.`)); return; }
  state.groups[name].push(face);
  renderGroup(name);
}

async function arithmetic() {
  clearError("arith");
  const { a, b, c } = state.groups;
  if (!a.length || !b.length || !c.length) {
    showError("arith", new Error("Add at least one face to each of A, B and C (select a face, then +A, +B or +C)."));
    return;
  }
  const variations = Number($("variations").value);
  await busy($("arith-result"), async () => {
    try {
      const data = await api("/api/arithmetic", { a: a.map((f) => f.z), b: b.map((f) => f.z), c: c.map((f) => f.z), variations });
      const faces = [
        makeFace(data.means.a, "mean A"), makeFace(data.means.b, "mean B"), makeFace(data.means.c, "mean C"),
        makeFace(data.result, "A − B + C"),
        ...data.variations.map((v, i) => makeFace(v, `variation ${i + 1}`)),
      ];
      renderFaces($("arith-result"), faces);
      $("arith-result").children[3].classList.add("result");
    } catch (err) { showError("arith", err); }
  });
}

async function createCustomDirection() {
  clearError("custom");
  const w = state.groups.with, wo = state.groups.without;
  if (!w.length || !wo.length) {
    showError("custom", new Error("Add faces to both “with” and “without” (select a face, then +with or +without)."));
    return;
  }
  const base = ($("custom-name").value || "custom").trim().slice(0, 40);
  let name = base, k = 2;
  while (state.directions.some((d) => d.name === name)) name = `${base} ${k++}`;
  try {
    const data = await api("/api/directions/custom", { with: w.map((f) => f.z), without: wo.map((f) => f.z) });
    state.directions.push({ name, kind: "custom", vector: data.vector,
                            info: `your direction: ${w.length} with, ${wo.length} without; |mean difference| ${data.raw_norm.toFixed(2)}` });
    $("custom-name").value = "";
    renderSliders();
  } catch (err) { showError("custom", err); }
}

// -- directions and sliders ------------------------------------------------------------------------------------------
async function loadDirections() {
  try {
    const data = await api("/api/directions?" + targetQuery());
    const custom = state.directions.filter((d) => d.kind === "custom");
    state.amountRange = data.amount_range || [-3, 3];
    // Sliders listed per kind (mean difference, boundary, conditional, SeFa); see specify.js for conditional ones.
    const order = ["mean_difference", "boundary", "conditional", "sefa"];
    const attributes = (data.directions || []).map((d) => ({ name: d.name, kind: "attribute", group: d.kind || "mean_difference", info: directionInfo(d),
                                                             badge: d.badge || null, suggested: d.suggested_amount ?? null }))
      .sort((a, b) => order.indexOf(a.group) - order.indexOf(b.group));
    state.directions = [...attributes, ...custom];
    document.dispatchEvent(new CustomEvent("studio:directions", { detail: data }));
    $("directions-note").textContent = data.available
      ? `Attribute directions of version ${data.version} (${data.source === "file" ? "from --directions" : "stored with the model"}). Amounts are in standard deviations of z along each direction.`
      : (data.note || "No attribute directions.");
    renderSliders();
  } catch (err) {
    if (!isDown(err)) $("directions-note").textContent = "Directions unavailable: " + err.message;
  }
}

function directionInfo(d) {
  // One short line under the slider; the full numbers go to its tooltip.
  const parts = [], tip = [d.definition || d.name];
  const c = d.classifier || {};
  if (c.balanced_accuracy !== undefined && c.balanced_accuracy !== null) {
    parts.push(`classifier ${Math.round(100 * c.balanced_accuracy)}%`);
    tip.push(`classifier on held-out real faces: accuracy ${c.accuracy}, balanced accuracy ${c.balanced_accuracy} (n=${c.n})`);
  }
  const e = d.effect;
  if (e && e.amounts && !e.delta) {  // SeFa: no attribute of its own, only what changes
    const side = Object.entries(e.side_effects || {}).map(([k, v]) => `${k} ${v >= 0 ? "+" : ""}${v.toFixed(2)}`);
    parts.push("unsupervised" + (side.length ? ` · ${side.slice(0, 2).join(", ")} at +${e.side_effects_at}` : ""));
  }
  if (e && e.amounts && e.delta) {
    const i = e.amounts.indexOf(2);
    const j = i >= 0 ? i : e.amounts.length - 1;
    const delta = e.delta[j];
    parts.push(`score ${delta >= 0 ? "+" : ""}${delta.toFixed(2)} at ${e.amounts[j] > 0 ? "+" : ""}${e.amounts[j]}` +
               (Math.abs(delta) < 0.05 ? " (weak)" : ""));
    tip.push("mean score change: " + e.amounts.map((a, k) => `${a > 0 ? "+" : ""}${a}: ${e.delta[k] >= 0 ? "+" : ""}${e.delta[k].toFixed(2)}`).join(", "));
    const side = Object.entries(e.side_effects || {}).map(([k, v]) => `${k} ${v >= 0 ? "+" : ""}${v.toFixed(2)}`);
    if (side.length) tip.push(`also changes (at +${e.side_effects_at}): ${side.join(", ")}`);
  }
  if (d.positive_rate) tip.push(`share with it: real ${d.positive_rate.real}, generated ${d.positive_rate.generated}`);
  return { text: parts.join(" · "), tip: tip.join("\n") };
}

function qualityBadge(d, input) {
  // The slider's quality badge (dcgan.edit_quality.badge): success by the independent judge at the suggested step
  // and churn relative to random directions moved as far; a click moves the slider to that step.
  const b = d.badge;
  if (!b || b.success === null || b.success === undefined) return null;
  const el = document.createElement("span");
  el.setAttribute("data-testid", "quality-badge");
  const step = b.amount !== null && b.amount !== undefined ? `${b.amount > 0 ? "+" : ""}${b.amount}` : "";
  if (b.churn_ratio === undefined) {  // a table from before the judge: its own classifier, no control
    el.className = "badge unknown";
    el.textContent = `own classifier ${b.success.toFixed(2)} at ${step}`;
    el.title = `Success ${b.success} at ${step}, graded by the classifier that fitted this direction (no independent judge), net leakage ${b.leakage}.`;
    return el;
  }
  const ratio = b.churn_ratio === null ? "?" : `${b.churn_ratio.toFixed(1)}×`;
  el.className = "badge " + (b.meets_goals === true ? "pass" : b.meets_goals === false ? "fail" : "unknown");
  el.textContent = `${b.meets_goals === true ? "✓" : b.meets_goals === false ? "✗" : "?"} judge ${b.success.toFixed(2)} at ${step} · churn ${ratio} random`;
  const g = b.goals || {};
  el.title = [
    `Graded by the independent ${b.graded_by} (another network trained on other examples; it did not fit this direction), on fresh faces moved ${step}:`,
    `success ${b.success} (the classifier that fitted it: ${b.fit_success ?? "-"}; the two agree on ${b.agreement ?? "-"} of the faces)` +
      (b.ceiling ? `, ${b.of_ceiling ?? "-"} of the linear ceiling ${b.ceiling}` : ""),
    `churn ${b.churn}: share of faces whose verdict on another attribute flips — ${ratio} what random directions moved as far do`,
    `goals: success ≥ ${g.success ?? "-"}, churn ≤ ${g.churn_ratio ?? "-"}× random. Click: move the slider to ${step}.`,
  ].join("\n");
  el.addEventListener("click", () => {
    input.value = b.amount;
    input.dispatchEvent(new Event("input"));
  });
  return el;
}

function renderSliders() {
  const box = $("sliders");
  const [lo, hi] = state.amountRange;
  const kindTitles = { mean_difference: "mean difference", boundary: "boundary (InterFaceGAN)", conditional: "conditional (others fixed)", sefa: "SeFa (unsupervised)", custom: "yours" };
  let lastGroup = null;
  box.replaceChildren(...state.directions.flatMap((d, i) => {
    const group = d.group || (d.kind === "custom" ? "custom" : "mean_difference");
    const heading = group !== lastGroup ? [Object.assign(document.createElement("h4"), { className: "kind", textContent: kindTitles[group] || group })] : [];
    if (heading.length) heading[0].dataset.kind = group;
    lastGroup = group;
    const row = document.createElement("div");
    row.className = "slider " + d.kind;
    row.dataset.direction = d.name;
    const id = `slider-${i}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = d.name.replaceAll("_", " ");
    label.title = d.name;
    const input = document.createElement("input");
    input.type = "range"; input.id = id; input.min = lo; input.max = hi; input.step = 0.1;
    input.value = state.amounts[d.name] || 0;
    input.setAttribute("data-testid", "slider");
    input.dataset.direction = d.name;
    const out = document.createElement("output");
    out.htmlFor = id;
    out.textContent = Number(input.value).toFixed(1);
    input.addEventListener("input", () => {
      state.amounts[d.name] = Number(input.value);
      out.textContent = Number(input.value).toFixed(1);
      scheduleMove();
    });
    const info = document.createElement("div");
    info.className = "info";
    const details = typeof d.info === "string" ? { text: d.info, tip: d.info } : (d.info || { text: "", tip: "" });
    info.textContent = details.text;
    row.title = details.tip;
    row.append(label, input, out, info);
    if (d.suggested !== null && d.suggested !== undefined) {  // a tick at the suggested step
      const ticks = document.createElement("datalist");
      ticks.id = `ticks-${i}`;
      ticks.append(Object.assign(document.createElement("option"), { value: 0 }),
                   Object.assign(document.createElement("option"), { value: d.suggested, label: "suggested" }));
      input.setAttribute("list", ticks.id);
      input.dataset.suggested = d.suggested;
      row.append(ticks);
    }
    const quality = qualityBadge(d, input);
    if (quality) info.append(" ", quality);
    if (d.kind === "custom") {
      const x = document.createElement("button");
      x.type = "button"; x.className = "remove"; x.textContent = "remove";
      x.addEventListener("click", () => {
        state.directions = state.directions.filter((o) => o !== d);
        delete state.amounts[d.name];
        renderSliders(); scheduleMove();
      });
      info.append(" ", x);
    }
    row.dataset.kind = group;
    return [...heading, row];
  }));
}

let moveRunning = false, moveAgain = false;
async function scheduleMove() {
  if (moveRunning) { moveAgain = true; return; }
  moveRunning = true;
  try {
    do { moveAgain = false; await applyMoves(); } while (moveAgain);
  } finally { moveRunning = false; }
}

async function applyMoves() {
  const base = state.selected;
  if (!base) return;
  clearError("move");
  const moves = state.directions
    .filter((d) => state.amounts[d.name])
    .map((d) => d.kind === "custom" ? { vector: d.vector, amount: state.amounts[d.name] } : { direction: d.name, amount: state.amounts[d.name] });
  if (!moves.length) { show(base); return; }
  try {
    const data = await api("/api/move", { z: base.z, moves });
    const what = state.directions.filter((d) => state.amounts[d.name])
      .map((d) => `${d.name} ${state.amounts[d.name] > 0 ? "+" : ""}${state.amounts[d.name]}`).join(", ");
    show(makeFace({ z: data.z, png: data.png }, `${faceCaption(base)} · ${what}`));
  } catch (err) { showError("move", err); }
}

// -- target ---------------------------------------------------------------------------------------------------------
function fillLabels() {
  const select = $("label");
  const labels = ["", ...state.config.labels];
  if (state.config.label && !labels.includes(state.config.label)) labels.push(state.config.label);
  select.replaceChildren(...labels.map((l) => {
    const o = document.createElement("option");
    o.value = l; o.textContent = l || "latest";
    return o;
  }));
  select.value = state.target.label;
}

async function useTarget(event) {
  if (event) event.preventDefault();
  state.target = { model: $("model").value.trim(), label: $("label").value };
  state.serving = null;
  renderStatus();
  await pollStatus();  // a new version reloads the directions (noteServing)
  if (!state.down) await generateGrid();
  if (state.selected && !state.down) {
    try {
      const data = await api("/api/images", { z: state.selected.z });
      select(makeFace(data.faces[0], faceCaption(state.selected)));
    } catch (err) { showError("z", err); }
  }
}

// -- wiring -----------------------------------------------------------------------------------------------------------
async function start() {
  try {
    state.config = await api("/api/config");
  } catch (err) { setDown(err); return; }
  state.target = { model: state.config.model, label: state.config.label || "" };
  $("model").value = state.target.model;
  $("foot-server").textContent = `model server ${state.config.server}`;
  fillLabels();
  $("target-form").addEventListener("submit", useTarget);
  $("grid-form").addEventListener("submit", (e) => { e.preventDefault(); generateGrid(); });
  $("prev-page").addEventListener("click", () => { $("seed").value = Math.max(0, Number($("seed").value) - Number($("count").value)); generateGrid(); });
  $("next-page").addEventListener("click", () => { $("seed").value = Number($("seed").value) + Number($("count").value); generateGrid(); });
  $("random-seed").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 1e9); generateGrid(); });
  $("walk-form").addEventListener("submit", (e) => { e.preventDefault(); walk(); });
  $("arith-form").addEventListener("submit", (e) => { e.preventDefault(); arithmetic(); });
  $("arith-clear").addEventListener("click", () => { for (const g of ["a", "b", "c"]) { state.groups[g] = []; renderGroup(g); } $("arith-result").replaceChildren(); });
  $("custom-form").addEventListener("submit", (e) => { e.preventDefault(); createCustomDirection(); });
  $("custom-clear").addEventListener("click", () => { for (const g of ["with", "without"]) { state.groups[g] = []; renderGroup(g); } });
  $("render-z").addEventListener("click", renderPastedZ);
  $("copy-z").addEventListener("click", copyZ);
  $("download-big").addEventListener("click", downloadBig);
  $("keep").addEventListener("click", () => { if (state.current && !state.kept.includes(state.current)) { state.kept.push(state.current); renderKept(); } });
  $("reset-sliders").addEventListener("click", () => { state.amounts = {}; renderSliders(); scheduleMove(); });
  $("banner-retry").addEventListener("click", pollStatus);
  $("z-map").addEventListener("mousemove", zValueAt);
  for (const button of document.querySelectorAll("[data-action]")) {
    button.addEventListener("click", () => {
      const action = button.dataset.action;
      if (action === "walk-a" || action === "walk-b") {
        const slot = action.slice(-1);
        state.walk[slot] = state.current;
        renderSlot(slot);
      } else {
        addToGroup(action.slice("group-".length));
      }
    });
  }
  await pollStatus();
  if (!state.down) await generateGrid();
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
