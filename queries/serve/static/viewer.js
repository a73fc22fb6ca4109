// e2r viewer: upload or pick an ECG, draw its 12 leads, show the kNN estimate and the neighbours'
// cine loops. Plain JS against the server's own API (same origin; the API key, when the server
// needs one, travels in the cookie that /?key=KEY sets).
"use strict";

const $ = (id) => document.getElementById(id);
const PX_PER_MM = 4;            // canvas 1000 px = 250 mm = 10 s at 25 mm/s
const MM_PER_S = 25, MM_PER_MV = 10;
const ROW_MM = 30;              // height of one lead row
const LAYOUT = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]];
const CLASS_LABELS = { reduced: "reduced (<40 %)", mildly_reduced: "mildly reduced (40-49 %)", preserved: "preserved (>=50 %)" };

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, options) {
  const resp = await fetch(path, options);
  const type = resp.headers.get("content-type") || "";
  const body = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) throw new Error((body && body.error) || `${resp.status} ${resp.statusText}`);
  return body;
}

// -- the ECG on ECG paper ----------------------------------------------------------------------
function drawGrid(ctx, w, h) {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  for (let mm = 0; mm * PX_PER_MM <= w; mm++) {
    ctx.strokeStyle = mm % 5 === 0 ? "#e8a0a0" : "#f6dcdc";
    ctx.lineWidth = mm % 5 === 0 ? 1 : 0.5;
    ctx.beginPath(); ctx.moveTo(mm * PX_PER_MM + 0.5, 0); ctx.lineTo(mm * PX_PER_MM + 0.5, h); ctx.stroke();
  }
  for (let mm = 0; mm * PX_PER_MM <= h; mm++) {
    ctx.strokeStyle = mm % 5 === 0 ? "#e8a0a0" : "#f6dcdc";
    ctx.lineWidth = mm % 5 === 0 ? 1 : 0.5;
    ctx.beginPath(); ctx.moveTo(0, mm * PX_PER_MM + 0.5); ctx.lineTo(w, mm * PX_PER_MM + 0.5); ctx.stroke();
  }
}

function trace(ctx, values, fs, t0, t1, x0, yMid) {
  ctx.beginPath();
  let pen = false;
  for (let i = Math.floor(t0 * fs); i < Math.min(values.length, Math.ceil(t1 * fs)); i++) {
    const v = values[i];
    if (v === null) { pen = false; continue; }
    const x = x0 + (i / fs - t0) * MM_PER_S * PX_PER_MM;
    const y = yMid - v * MM_PER_MV * PX_PER_MM;
    if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    pen = true;
  }
  ctx.stroke();
}

function drawECG(ecg) {
  const canvas = $("ecg"), ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, rowPx = ROW_MM * PX_PER_MM, colS = 2.5;
  drawGrid(ctx, w, h);
  const lead = (name) => ecg.signal[ecg.leads.indexOf(name)] || [];
  ctx.lineWidth = 1.2; ctx.strokeStyle = "#111"; ctx.fillStyle = "#111"; ctx.font = "12px sans-serif";
  LAYOUT.forEach((names, r) => names.forEach((name, c) => {
    const x0 = c * colS * MM_PER_S * PX_PER_MM, yMid = (r + 0.5) * rowPx;
    trace(ctx, lead(name), ecg.fs, c * colS, (c + 1) * colS, x0, yMid);
    ctx.fillText(name + (ecg.derived_leads.includes(name) ? " (derived)" : ""), x0 + 4, r * rowPx + 14);
    if (c > 0) { ctx.beginPath(); ctx.moveTo(x0, yMid - 20); ctx.lineTo(x0, yMid + 20); ctx.stroke(); }
  }));
  const yR = 3.5 * rowPx;
  trace(ctx, lead("II"), ecg.fs, 0, 10, 0, yR);
  ctx.fillText("II (rhythm)", 4, 3 * rowPx + 14);
  // 1 mV calibration pulse, 0.2 s wide, at the right end of the rhythm strip
  const xc = w - 0.4 * MM_PER_S * PX_PER_MM, pulse = MM_PER_MV * PX_PER_MM;
  ctx.strokeStyle = "#1a4fa0"; ctx.beginPath();
  ctx.moveTo(xc, yR); ctx.lineTo(xc, yR - pulse); ctx.lineTo(xc + 5 * PX_PER_MM, yR - pulse); ctx.lineTo(xc + 5 * PX_PER_MM, yR); ctx.stroke();
  ctx.fillStyle = "#1a4fa0"; ctx.fillText("1 mV", xc - 2, yR - pulse - 4);
  ctx.fillStyle = "#333";
  for (let s = 0; s <= 10; s++) ctx.fillText(`${s} s`, Math.min(s * MM_PER_S * PX_PER_MM + 2, w - 22), h - 6);
  $("ecg-title").textContent = `ECG ${ecg.name}: ${ecg.fs} Hz shown, ${ecg.duration_s} s`;
}

// -- estimate and neighbours -------------------------------------------------------------------
// Payload text (UIDs, views) comes from DICOM headers: escape it before it meets innerHTML.
const esc = (t) => String(t).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmt = (v, d = 1) => (v === null || v === undefined ? "-" : Number(v).toFixed(d));
const pct = (p) => (p === null || p === undefined ? "-" : `${Math.round(100 * p)} %`);

function barRow(label, p) {
  return `<div class="bar-row"><span class="label">${label}</span><span class="bar-track">` +
    `<div class="bar" style="width:${Math.round(100 * (p || 0))}%"></div></span><span class="value">${pct(p)}</span></div>`;
}

function showEstimate(est) {
  const box = $("estimate");
  box.classList.remove("muted");
  if (!est || !est.n_neighbours) { box.innerHTML = "No labelled neighbours: no estimate."; return; }
  const probs = est.lvef_class_probs || {};
  const interval = est.lvef_interval ? ` <span class="muted">(interval ${fmt(est.lvef_interval[0])}-${fmt(est.lvef_interval[1])} %)</span>` : "";
  box.innerHTML =
    `<div class="muted">LVEF class probabilities (${est.n_neighbours} labelled neighbours vote)</div>` +
    Object.keys(CLASS_LABELS).map((c) => barRow(CLASS_LABELS[c], probs[c])).join("") +
    `<div class="est-figure">LVEF <b id="est-lvef">${fmt(est.lvef)} %</b>${interval}</div>` +
    `<div class="est-figure">P(LVEF &le; 45 %) <b id="est-le45">${pct(est.p_lvef_le45)}</b></div>` +
    `<div class="est-figure">P(LVH, wall &ge; 13 mm) <b id="est-lvh">${pct(est.p_lvh)}</b></div>`;
}

function isoDate(d) {
  const s = d === null || d === undefined ? "" : String(d);
  return s.length === 8 ? `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6)}` : s || "date unknown";
}

function card(n) {
  const p = n.phenotypes || {};
  const uid = encodeURIComponent(n.study_uid);
  const loops = Array.from({ length: n.n_videos }, (_, i) =>
    `<img class="preview" loading="lazy" alt="cine loop ${i + 1}" title="video ${i + 1}" src="/v1/studies/${uid}/videos/${i}/preview">`).join("");
  const rows = [["LVEF", p.lvef, "%"], ["LVEDV", p.lvedv, "ml"], ["LVESV", p.lvesv, "ml"], ["IVSd", p.ivsd, "mm"],
    ["LVPWd", p.lvpwd, "mm"], ["LA vol", p.la_volume, "ml"], ["RV", p.rv_diameter, "mm"]]
    .map(([k, v, u]) => `<tr><td>${k}</td><td>${fmt(v)} ${v === null || v === undefined ? "" : u}</td></tr>`).join("");
  const div = document.createElement("div");
  div.className = "card";
  div.innerHTML = `<div class="head"><span>#${n.rank} &middot; similarity ${fmt(n.similarity, 3)}</span>` +
    `<span>${esc(isoDate(n.study_date))}</span></div><div class="uid">${esc(n.study_uid)}</div>` +
    `<div>views: ${esc((n.views || []).join(", ") || "unknown")}${p.rhythm ? " &middot; rhythm " + esc(p.rhythm) : ""}</div>` +
    `<div class="loops">${loops}</div><table>${rows}</table>`;
  div.querySelectorAll("img.preview").forEach((img) => img.addEventListener("error", () => { img.title = "no preview"; }));
  return div;
}

function showResult(doc) {
  showEstimate(doc.estimate);
  const box = $("neighbours");
  box.replaceChildren(...doc.neighbours.map(card));
  if (!doc.neighbours.length) box.textContent = (doc.notes || []).join("; ") || "No study found.";
}

// -- requests ----------------------------------------------------------------------------------
function searchForm(extra) {
  const form = new FormData();
  form.append("top_k", $("top-k").value);
  form.append("k", $("k").value);
  $("filters").value.split(";").map((f) => f.trim()).filter(Boolean).forEach((f) => form.append("filter", f));
  extra(form);
  return form;
}

async function run(ecgRequest, searchExtra) {
  showError("");
  $("search-button").disabled = true;
  try {
    const [ecg, doc] = await Promise.all([ecgRequest(), api("/v1/search", { method: "POST", body: searchForm(searchExtra) })]);
    drawECG(ecg);
    showResult(doc);
  } catch (err) {
    showError(err.message);
  } finally {
    $("search-button").disabled = false;
  }
}

function searchUpload() {
  const files = Array.from($("files").files);
  if (!files.length) { showError("Choose an ECG first: a WFDB .hea with its .dat or .mat, or one DICOM ECG."); return; }
  const addFiles = (form) => files.forEach((f) => form.append("files", f, f.name));
  run(() => { const f = new FormData(); addFiles(f); return api("/v1/ecg", { method: "POST", body: f }); }, addFiles);
}

function searchExample(id) {
  run(() => api(`/v1/examples/${id}/ecg`), (form) => form.append("example", id));
}

async function init() {
  $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); searchUpload(); });
  $("files").addEventListener("change", searchUpload);
  try {
    const s = await api("/v1/stats");
    $("stats").textContent = `collection ${s.collection} · ${s.points} studies · model ${String(s.model_hash).slice(0, 12)} · ${s.backend}`;
    $("synthetic-banner").hidden = !s.synthetic;
    const examples = await api("/v1/examples");
    if (examples.length) {
      const box = $("examples");
      box.append(Object.assign(document.createElement("span"), { className: "muted", textContent: "examples:" }));
      examples.forEach((ex) => {
        const b = Object.assign(document.createElement("button"), { type: "button", textContent: ex.name });
        b.addEventListener("click", () => searchExample(ex.id));
        box.append(b);
      });
    }
  } catch (err) {
    showError(err.message);
  }
}

init();
