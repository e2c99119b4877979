// DCGAN studio: "specify, then generate" (POST /api/specify) and conditional sliders (POST /api/directions/conditional).
// Loaded after studio.js and uses its helpers (api, makeFace, renderFaces, showError, state, renderSliders).
"use strict";

const specifyState = { attributes: [], faces: [] };

function renderSpecifyAttributes() {
  // One select per attribute: any / yes / no. Kept choices survive a reload of the directions.
  const box = document.getElementById("specify-attributes");
  const before = Object.fromEntries([...box.querySelectorAll("select")].map((s) => [s.dataset.attribute, s.value]));
  box.replaceChildren(...specifyState.attributes.map((a) => {
    const label = document.createElement("label");
    label.className = "constraint" + (a.reliable ? "" : " unreliable");
    label.title = a.reliable ? a.name : `${a.name}: its classifier is below the reliability bar on held-out faces`;
    const select = document.createElement("select");
    select.dataset.attribute = a.name;
    select.setAttribute("data-testid", "constraint");
    for (const [value, text] of [["", "any"], ["true", "yes"], ["false", "no"]]) {
      const o = document.createElement("option");
      o.value = value; o.textContent = text;
      select.appendChild(o);
    }
    select.value = before[a.name] || "";
    label.append(a.name.replaceAll("_", " ") + " ", select);
    return label;
  }));
  const fixed = document.getElementById("conditional-fixed");
  const attr = document.getElementById("conditional-attribute");
  const withNormal = specifyState.attributes.filter((a) => a.boundary);
  attr.replaceChildren(...withNormal.map((a) => Object.assign(document.createElement("option"), { value: a.name, textContent: a.name.replaceAll("_", " ") })));
  fixed.replaceChildren(...withNormal.map((a) => {
    const label = document.createElement("label");
    const box = Object.assign(document.createElement("input"), { type: "checkbox", value: a.name, checked: a.reliable });
    box.setAttribute("data-testid", "conditional-fixed");
    label.append(box, " " + a.name.replaceAll("_", " "));
    return label;
  }));
  document.getElementById("conditional-form").hidden = withNormal.length === 0;
}

async function specifyFaces(event) {
  event.preventDefault();
  clearError("specify");
  const constraints = {};
  for (const s of document.querySelectorAll("#specify-attributes select")) {
    if (s.value) constraints[s.dataset.attribute] = s.value === "true";
  }
  if (!Object.keys(constraints).length) {
    showError("specify", new Error("Pick at least one attribute (yes or no)."));
    return;
  }
  const n = Number(document.getElementById("specify-n").value);
  const box = document.getElementById("specify-faces");
  const rate = document.getElementById("specify-rate");
  rate.textContent = "";
  await busy(box, async () => {
    try {
      const data = await api("/api/specify", { constraints, n });
      specifyState.faces = data.faces.map((f) => Object.assign(makeFace(f, `seed ${f.seed}`), { scores: f.scores }));
      renderFaces(box, specifyState.faces);
      const s = data.satisfaction;
      rate.textContent = `${data.faces.length} of ${n} found · ${s.satisfied} of ${s.sampled} sampled faces met every constraint (${(100 * s.rate).toFixed(1)}%)` +
        (data.complete ? "" : " · fewer than asked: the sampling budget ran out");
    } catch (err) {
      box.replaceChildren();
      showError("specify", err);
    }
  });
}

async function makeConditionalSlider(event) {
  event.preventDefault();
  clearError("move");
  const attribute = document.getElementById("conditional-attribute").value;
  const fixed = [...document.querySelectorAll("#conditional-fixed input:checked")].map((b) => b.value).filter((n) => n !== attribute);
  try {
    const data = await api("/api/directions/conditional", { attribute, fixed });
    state.directions = state.directions.filter((d) => d.name !== data.name);
    state.directions.push({ name: data.name, kind: "custom", group: "conditional", vector: data.vector,
                            info: { text: `${fixed.length} fixed · cos ${data.cosine_to_boundary.toFixed(2)} to the boundary`,
                                    tip: `${attribute}'s boundary normal with ${fixed.join(", ") || "nothing"} projected out` } });
    renderSliders();
  } catch (err) { showError("move", err); }
}

document.addEventListener("studio:directions", (event) => {
  specifyState.attributes = event.detail.attributes || [];
  const note = document.getElementById("specify-note");
  note.textContent = specifyState.attributes.length ? "" : "No attribute classifier for this version: specify needs directions computed with `dcgan directions`.";
  renderSpecifyAttributes();
});

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("specify-form").addEventListener("submit", specifyFaces);
  document.getElementById("conditional-form").addEventListener("submit", makeConditionalSlider);
});
