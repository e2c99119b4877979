// Studio: bring your own face (POST /api/project) and z edited cell by cell on the z map (carpedm20's web demo let
// people edit z as 100 "pixels"). Loaded after studio.js and uses its page state and helpers (state, api, select,
// show, makeFace, drawZ, showError, clearError, busy, noteServing, ApiError).
"use strict";

// -- upload panel ---------------------------------------------------------------------------------------------------
const PROJECT_MAX_SIDE = 1024;  // big photos are scaled down in the browser before upload (the body limit applies)

function projectPanel() {
  const section = document.createElement("section");
  section.id = "project-section";
  section.className = "panel";
  section.setAttribute("aria-labelledby", "project-title");
  section.innerHTML = `
    <div class="panel-head">
      <h2 id="project-title">Your own face</h2>
      <form id="project-form" class="controls" autocomplete="off">
        <input id="project-file" type="file" accept="image/*" data-testid="project-file" aria-label="a picture of a face">
        <label><input id="project-center" type="checkbox" data-testid="project-center"> centre-crop (no face detection)</label>
        <button type="submit" data-testid="project-run">Find its z</button>
      </form>
    </div>
    <p class="hint">Upload a photo or an avatar: photos are aligned like the training faces (face detection), small square pictures are centre-cropped. The model searches for the z whose face looks most like it; that z becomes the selected face, and the sliders and the z map edit it from there.</p>
    <div class="endpoints">
      <div class="slot"><span class="slot-name">your picture</span><div class="slot-face" id="project-original" data-testid="project-original">—</div></div>
      <div class="slot"><span class="slot-name">the model's face</span><div class="slot-face" id="project-reconstruction" data-testid="project-reconstruction">—</div></div>
    </div>
    <p id="project-note" class="hint" data-testid="project-note"></p>
    <div class="error" id="error-project" data-testid="error-project" role="alert" hidden></div>
    <div class="actions"><button type="button" id="project-offer" data-testid="project-offer" hidden>Centre-crop it instead</button></div>`;
  return section;
}

async function uploadBody(file, centerCrop) {
  // Scale a picture larger than the body limit allows (or than any face needs) down in the browser; anything the
  // browser cannot decode is sent as it is, so the server names what is wrong with it.
  let blob = file;
  const limit = (state.config && state.config.limits && state.config.limits.max_body_bytes) || (1 << 20);
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, PROJECT_MAX_SIDE / Math.max(bitmap.width, bitmap.height));
    if (scale < 1 || file.size > limit * 0.9) {
      const canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(bitmap.width * scale));
      canvas.height = Math.max(1, Math.round(bitmap.height * scale));
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
    }
  } catch (e) { blob = file; }
  const form = new FormData();
  form.append("file", blob, file.name || "upload");
  if (centerCrop) form.append("center_crop", "true");
  form.append("model", state.target.model);
  if (state.target.label) form.append("label", state.target.label);
  return form;
}

async function projectUpload(centerCrop) {
  clearError("project");
  $("project-offer").hidden = true;
  const file = $("project-file").files[0];
  if (!file) { showError("project", new Error("Choose a picture first.")); return; }
  await busy($("project-section"), async () => {
    $("project-note").textContent = "searching for its z…";
    try {
      let response;
      try {
        response = await fetch("/api/project", { method: "POST", body: await uploadBody(file, centerCrop) });
      } catch (e) {
        throw new ApiError("studio_unreachable", "The studio backend is not answering.", 0);
      }
      let data = null;
      try { data = await response.json(); } catch (e) { data = null; }
      if (!response.ok) {
        const err = (data && data.error) || { code: "http_" + response.status, message: response.statusText };
        throw new ApiError(err.code, err.message, response.status, err.field);
      }
      noteServing(data);
      const original = new Image();
      original.src = data.original; original.alt = "your picture, cropped"; original.dataset.testid = "project-original-img";
      const recon = new Image();
      recon.src = data.png; recon.alt = "the model's closest face"; recon.dataset.testid = "project-reconstruction-img";
      $("project-original").replaceChildren(original);
      $("project-reconstruction").replaceChildren(recon);
      $("project-note").textContent = `${data.crop === "aligned" ? "face aligned" : "centre-cropped"} · distance ${data.distance.toFixed(4)} (per-pixel MSE) · version ${data.version}`;
      select(makeFace({ z: data.z, png: data.png }, "your face"));
    } catch (err) {
      $("project-note").textContent = "";
      showError("project", err);
      if (err.code === "no_face") $("project-offer").hidden = false;
    }
  });
}

// -- z map: click or drag a cell to change that dimension ----------------------------------------------------------
const Z_DRAG_PX = 20;    // dragging this many pixels up adds 1 to the cell's value
const Z_EDIT_MAX = 4;    // edited values stay within ±4 (z ~ N(0, 1))

const zEdit = { index: -1, edited: -1, startY: 0, startValue: 0, z: null, moved: false,
                rendering: false, again: false, final: false, done: Promise.resolve() };

function zCellAt(event) {
  const canvas = $("z-map");
  const z = state.current && state.current.z;
  if (!z) return -1;
  const cols = Number(canvas.dataset.cols);
  const rows = Math.ceil(z.length / cols);
  const rect = canvas.getBoundingClientRect();
  const x = Math.floor((event.clientX - rect.left) / rect.width * cols);
  const y = Math.floor((event.clientY - rect.top) / rect.height * rows);
  const i = y * cols + x;
  return x >= 0 && x < cols && y >= 0 && i < z.length ? i : -1;
}

// Render the edited z: while dragging, each answer is shown (one request in flight, the latest z next); when the
// pointer is released, the last face becomes the selected one (the sliders move from it).
function renderEditedZ(final) {
  if (final) zEdit.final = true;
  if (zEdit.rendering) { zEdit.again = true; return zEdit.done; }
  zEdit.rendering = true;
  zEdit.done = (async () => {
    try {
      do {
        zEdit.again = false;
        const z = zEdit.z.slice();
        const i = zEdit.edited;
        const data = await api("/api/images", { z });
        const face = makeFace(data.faces[0], `edited z[${i}] = ${z[i].toFixed(2)}`);
        if (zEdit.final && !zEdit.again) select(face); else show(face);
      } while (zEdit.again);
    } catch (err) { showError("z", err); }
    finally { zEdit.rendering = false; zEdit.final = false; }
  })();
  return zEdit.done;
}

function zPointerDown(event) {
  const i = zCellAt(event);
  if (i < 0) return;
  event.preventDefault();
  $("z-map").setPointerCapture(event.pointerId);
  zEdit.index = zEdit.edited = i; zEdit.startY = event.clientY; zEdit.moved = false;
  zEdit.z = state.current.z.slice();
  zEdit.startValue = zEdit.z[i];
  clearError("z");
}

function zDragTo(event) {
  // The value follows the pointer's height from where the drag started; true once the pointer has really moved.
  const dy = zEdit.startY - event.clientY;
  if (Math.abs(dy) < 3 && !zEdit.moved) return false;
  zEdit.moved = true;
  const value = Math.max(-Z_EDIT_MAX, Math.min(Z_EDIT_MAX, zEdit.startValue + dy / Z_DRAG_PX));
  zEdit.z[zEdit.index] = Math.round(value * 100) / 100;
  return true;
}

function zPointerMove(event) {
  if (zEdit.index < 0 || !zDragTo(event)) return;
  drawZ(zEdit.z);
  renderEditedZ(false);
}

function zPointerUp(event) {
  if (zEdit.index < 0) return;
  // Where the pointer is released counts (moves may be coalesced or dropped on a busy page).
  if (!zDragTo(event)) zEdit.z[zEdit.index] = -zEdit.startValue;  // a click flips the cell's sign
  zEdit.index = -1;
  drawZ(zEdit.z);
  renderEditedZ(true);
}

document.addEventListener("DOMContentLoaded", () => {
  const work = document.querySelector("main .work");
  const grid = $("grid-section");
  work.insertBefore(projectPanel(), grid ? grid.nextSibling : work.firstChild);
  $("project-form").addEventListener("submit", (e) => { e.preventDefault(); projectUpload($("project-center").checked); });
  $("project-offer").addEventListener("click", () => { $("project-center").checked = true; projectUpload(true); });
  const map = $("z-map");
  map.style.touchAction = "none";  // a drag on a touch screen edits the cell instead of scrolling the page
  map.title = "click a cell to flip its sign, drag it up or down to change its value";
  map.addEventListener("pointerdown", zPointerDown);
  map.addEventListener("pointermove", zPointerMove);
  map.addEventListener("pointerup", zPointerUp);
  map.addEventListener("pointercancel", () => { zEdit.index = -1; });
});
