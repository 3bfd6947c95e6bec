// emotune serve: the page's script. Plain DOM, no framework, no network but this server.
// Flow: a photo (file, drop or webcam snapshot) -> POST /api/v1/predict (every face, 7 bars) and
// POST /api/v1/recommend (the mood of the largest face, the target, the tracks). The policy
// switch and the track count ask /recommend again with the same bytes. A face's "Where it looked"
// toggle asks /predict?explain=1 once for the photo and shows that face's Grad-CAM picture.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { blob: null, name: "", predict: null, recommend: null, explained: null, seq: 0 };
const SVG = "http://www.w3.org/2000/svg";

function setStatus(text, kind) {
  const s = $("status");
  s.textContent = text;
  s.className = "status" + (kind ? " " + kind : "");
}

// Every error is shown in words: the server's message when it sent one, else what failed.
async function postImage(path, query) {
  const form = new FormData();
  form.append("image", state.blob, state.name);
  let res;
  try {
    res = await fetch(path + (query ? "?" + query : ""), { method: "POST", body: form });
  } catch (e) {
    throw new Error("The server could not be reached (" + e.message + ").");
  }
  let body = null;
  try {
    body = await res.json();
  } catch (e) {
    body = null;
  }
  if (!res.ok) {
    const why = body && body.error ? body.error : res.status + " " + res.statusText;
    const err = new Error(explainStatus(res.status, why));
    err.status = res.status;
    throw err;
  }
  return body;
}

function explainStatus(status, why) {
  switch (status) {
    case 413: return "This file is too large: " + why;
    case 415: return "This is not an image we can read: " + why;
    case 422: return "No face found: " + why;
    case 503: return "The server is busy; try again in a moment. (" + why + ")";
    case 504: return "The server took too long: " + why;
    default: return why;
  }
}

function recommendQuery() {
  const policy = $("policy-uplift").checked ? "uplift" : "match";
  const top = Math.max(1, Math.min(20, parseInt($("top").value, 10) || 8));
  return "top=" + top + "&policy=" + policy;
}

async function analyse(blob, name) {
  const seq = ++state.seq;
  state.blob = blob;
  state.name = name || "photo";
  state.predict = state.recommend = state.explained = null;
  showPhoto(blob);
  $("results").hidden = true;
  setStatus("Reading the faces…", "busy");
  try {
    const [predict, recommend] = await Promise.all([
      postImage("/api/v1/predict"),
      postImage("/api/v1/recommend", recommendQuery()).catch((e) => e),
    ]);
    if (seq !== state.seq) return;  // a newer photo replaced this one
    state.predict = predict;
    const image = predict.images[0];
    drawFaces(image, null);
    if (image.status === "no_face") {
      setStatus("No face found in this photo. Try one where a face is clear, frontal and not too small.", "error");
      return;
    }
    if (recommend instanceof Error) throw recommend;
    state.recommend = recommend;
    render();
    setStatus(image.faces.length === 1 ? "1 face found." :
              image.faces.length + " faces found; the mood is read from the largest (★).");
  } catch (e) {
    if (seq !== state.seq) return;
    setStatus(e.message, "error");
  }
}

async function refreshRecommendation() {
  if (!state.blob || !state.predict || state.predict.images[0].status !== "ok") return;
  const seq = state.seq;
  setStatus("Picking tracks…", "busy");
  try {
    const recommend = await postImage("/api/v1/recommend", recommendQuery());
    if (seq !== state.seq) return;
    state.recommend = recommend;
    render();
    setStatus("Tracks updated (" + recommend.target.policy + ", " + recommend.tracks.length + ").");
  } catch (e) {
    setStatus(e.message, "error");
  }
}

function showPhoto(blob) {
  const img = $("photo");
  if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
  img.dataset.url = URL.createObjectURL(blob);
  img.src = img.dataset.url;
  $("photo-wrap").hidden = false;
  for (const b of document.querySelectorAll(".face-box")) b.remove();
}

function sameBox(a, b) {
  return a && b && a.x === b.x && a.y === b.y && a.w === b.w && a.h === b.h;
}

// Boxes are placed in percent of the decoded image, so they follow the photo at any width.
function drawFaces(image, chosenBox) {
  const wrap = $("photo-wrap");
  for (const b of wrap.querySelectorAll(".face-box")) b.remove();
  image.faces.forEach((f, i) => {
    const d = document.createElement("div");
    d.className = "face-box" + (sameBox(f.box, chosenBox) ? " chosen" : "");
    d.dataset.index = String(i + 1);
    d.style.left = (100 * f.box.x / image.width) + "%";
    d.style.top = (100 * f.box.y / image.height) + "%";
    d.style.width = (100 * f.box.w / image.width) + "%";
    d.style.height = (100 * f.box.h / image.height) + "%";
    d.title = "face " + (i + 1) + ": " + f.top.class + " " + pct(f.top.probability);
    const n = document.createElement("span");
    n.className = "face-num";
    n.textContent = (sameBox(f.box, chosenBox) ? "★ " : "") + (i + 1);
    d.appendChild(n);
    d.addEventListener("click", () => {
      const card = document.querySelector('.face-card[data-index="' + (i + 1) + '"]');
      if (card) card.scrollIntoView({ behavior: "smooth", block: "nearest" });
    });
    wrap.appendChild(d);
  });
}

// "happy 96%", or for an unsure face (calibrated top probability below the server's threshold)
// the two likeliest moods: "unsure: sad 38% / neutral 34%", as the terminal and the video say it.
function moodText(probabilities, unsure) {
  const sorted = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  const word = ([c, p]) => c + " " + Math.round(100 * p) + "%";
  return unsure && sorted.length > 1 ? "unsure: " + word(sorted[0]) + " / " + word(sorted[1]) : word(sorted[0]);
}

function pct(p) { return (100 * p).toFixed(p >= 0.995 || p < 0.1 ? 1 : 0) + "%"; }

function render() {
  const image = state.predict.images[0];
  const r = state.recommend;
  drawFaces(image, r.face.box);
  $("results").hidden = false;
  $("mood-text").textContent = moodText(r.mood.probabilities, r.mood.unsure);
  $("explanation").textContent = r.explanation;
  renderFaces(image, r.face.box);
  renderTracks(r);
  renderPlane(r);
}

function renderFaces(image, chosenBox) {
  const host = $("faces");
  host.textContent = "";
  const classes = state.predict.model.classes;
  image.faces.forEach((f, i) => {
    const card = document.createElement("div");
    const chosen = sameBox(f.box, chosenBox);
    card.className = "face-card" + (chosen ? " chosen" : "");
    card.dataset.index = String(i + 1);
    const h = document.createElement("h3");
    h.textContent = (chosen ? "★ " : "") + "Face " + (i + 1) + " ";
    const small = document.createElement("small");
    small.textContent = moodText(f.probabilities, f.unsure);
    h.appendChild(small);
    card.appendChild(h);
    for (const c of classes) {
      const p = f.probabilities[c];
      const row = document.createElement("div");
      row.className = "bar-row";
      const name = document.createElement("span");
      name.textContent = c;
      const bar = document.createElement("div");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = (100 * p).toFixed(1) + "%";
      fill.style.background = "var(--" + c + ", var(--neutral))";
      bar.appendChild(fill);
      const v = document.createElement("span");
      v.className = "pct";
      v.textContent = (100 * p).toFixed(1) + "%";
      row.append(name, bar, v);
      card.appendChild(row);
    }
    card.appendChild(explainToggle(i));
    host.appendChild(card);
  });
}

// The per-face toggle: the first one pressed fetches every face's explanation (one request).
function explainToggle(i) {
  const wrap = document.createElement("div");
  wrap.className = "explain-wrap";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "explain-toggle";
  button.setAttribute("aria-pressed", "false");
  button.textContent = "Where it looked";
  const img = document.createElement("img");
  img.className = "explain-img";
  img.hidden = true;
  button.addEventListener("click", async () => {
    if (!img.hidden) {
      img.hidden = true;
      button.setAttribute("aria-pressed", "false");
      return;
    }
    const seq = state.seq;
    try {
      if (!state.explained) {
        button.disabled = true;
        setStatus("Looking where the network looked…", "busy");
        state.explained = await postImage("/api/v1/predict", "explain=1");
        if (seq !== state.seq) return;
        setStatus("Grad-CAM: red is where the evidence for the class was strongest.");
      }
      const e = state.explained.images[0].faces[i].explanation;
      img.src = e.image;
      img.alt = "Grad-CAM of face " + (i + 1) + ": where the network found " + e["class"];
      img.hidden = false;
      button.setAttribute("aria-pressed", "true");
    } catch (err) {
      setStatus(err.message, "error");
    } finally {
      button.disabled = false;
    }
  });
  wrap.append(button, img);
  return wrap;
}

function renderTracks(r) {
  const body = $("tracks").querySelector("tbody");
  body.textContent = "";
  for (const t of r.tracks) {
    const tr = document.createElement("tr");
    tr.className = "track-row";
    const cells = [String(t.rank), t.artist, t.title, t.valence.toFixed(2), t.energy.toFixed(2)];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i >= 3) td.className = "num";
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
}

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Valence (x) and energy (y) planes: the whole [0, 1] square, and a close-up around the target
// (the nearest tracks usually sit within a few hundredths of it, on top of each other above).
function renderPlane(r) {
  const m = r.target;
  let half = 0.03;
  for (const t of r.tracks) half = Math.max(half, Math.abs(t.valence - m.valence), Math.abs(t.energy - m.energy));
  half = Math.min(0.5, half * 1.35);
  const clamp = (c) => Math.min(Math.max(c, half), 1 - half);
  const zoom = { v0: clamp(m.valence) - half, e0: clamp(m.energy) - half, size: 2 * half };
  drawPlane($("plane"), r, { v0: 0, e0: 0, size: 1 }, zoom);
  drawPlane($("plane-zoom"), r, zoom, null);
  $("zoom-caption").textContent = "Close-up: valence " + zoom.v0.toFixed(2) + "–" + (zoom.v0 + zoom.size).toFixed(2) +
    ", energy " + zoom.e0.toFixed(2) + "–" + (zoom.e0 + zoom.size).toFixed(2);
}

function drawPlane(svg, r, view, windowBox) {
  svg.textContent = "";
  const L = 30, T = 10, S = 300;
  const X = (v) => L + (v - view.v0) / view.size * S, Y = (e) => T + (1 - (e - view.e0) / view.size) * S;
  const inside = (v, e) => v >= view.v0 - 1e-9 && v <= view.v0 + view.size + 1e-9 &&
                           e >= view.e0 - 1e-9 && e <= view.e0 + view.size + 1e-9;
  for (let g = 0; g <= 4; g++) {
    const v = view.v0 + g * view.size / 4, e = view.e0 + g * view.size / 4;
    svg.appendChild(el("line", { class: "grid", x1: X(v), y1: Y(view.e0), x2: X(v), y2: Y(view.e0 + view.size) }));
    svg.appendChild(el("line", { class: "grid", x1: X(view.v0), y1: Y(e), x2: X(view.v0 + view.size), y2: Y(e) }));
  }
  svg.appendChild(el("line", { class: "axis", x1: L, y1: T + S, x2: L + S, y2: T + S }));
  svg.appendChild(el("line", { class: "axis", x1: L, y1: T, x2: L, y2: T + S }));
  svg.appendChild(el("text", { x: L + S, y: T + S + 22, "text-anchor": "end" }, "valence →"));
  svg.appendChild(el("text", { x: 14, y: T, transform: "rotate(-90 14 " + T + ")", "text-anchor": "end" }, "energy →"));
  if (view.size === 1) {
    const quads = [["tense", 0.02, 0.97], ["excited", 0.98, 0.97], ["sad", 0.02, 0.03], ["calm", 0.98, 0.03]];
    for (const [t, v, e] of quads)
      svg.appendChild(el("text", { class: "quad", x: X(v), y: Y(e) + (e > 0.5 ? 10 : -4), "text-anchor": v < 0.5 ? "start" : "end" }, t));
  } else {
    svg.appendChild(el("text", { class: "quad", x: L + 4, y: T + S - 4 }, view.v0.toFixed(2) + ", " + view.e0.toFixed(2)));
  }
  if (windowBox)
    svg.appendChild(el("rect", { class: "window", x: X(windowBox.v0), y: Y(windowBox.e0 + windowBox.size),
                                 width: windowBox.size * S, height: windowBox.size * S }));
  const m = r.target;
  if (Math.abs(m.valence - m.mood_valence) > 1e-3 || Math.abs(m.energy - m.mood_energy) > 1e-3)
    svg.appendChild(el("line", { class: "shift", x1: X(m.mood_valence), y1: Y(m.mood_energy), x2: X(m.valence), y2: Y(m.energy) }));
  if (inside(m.mood_valence, m.mood_energy))
    svg.appendChild(el("circle", { class: "mood", cx: X(m.mood_valence), cy: Y(m.mood_energy), r: 12 }));
  // Tracks from the last rank to the first, so rank 1 is drawn on top.
  for (const t of r.tracks.slice().reverse()) {
    if (!inside(t.valence, t.energy)) continue;
    const g = el("g", { class: "track-dot" });
    g.appendChild(el("circle", { class: "track", cx: X(t.valence), cy: Y(t.energy), r: 8 }));
    g.appendChild(el("text", { class: "track-num", x: X(t.valence), y: Y(t.energy) + 3.5, "text-anchor": "middle" }, String(t.rank)));
    g.appendChild(el("title", {}, t.rank + ". " + t.artist + " – " + t.title));
    svg.appendChild(g);
  }
  const tgt = el("circle", { class: "target", cx: X(m.valence), cy: Y(m.energy), r: 5 });
  tgt.appendChild(el("title", {}, "target: valence " + m.valence.toFixed(2) + ", energy " + m.energy.toFixed(2) + " (" + m.policy + ")"));
  svg.appendChild(tgt);
}

// --- input: file picker, drag and drop, webcam -------------------------------------------------

function takeFile(file) {
  if (!file) return;
  analyse(file, file.name);
}

$("file").addEventListener("change", (e) => takeFile(e.target.files[0]));
const drop = $("drop");
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
  e.preventDefault();
  drop.classList.add("over");
}));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => {
  e.preventDefault();
  drop.classList.remove("over");
}));
drop.addEventListener("drop", (e) => takeFile(e.dataTransfer.files[0]));
drop.addEventListener("keydown", (e) => {
  if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); }
});

let stream = null;
$("camera-btn").addEventListener("click", async () => {
  const video = $("video");
  if (stream) {
    stream.getTracks().forEach((t) => t.stop());
    stream = null;
    video.hidden = $("snap-btn").hidden = true;
    $("camera-btn").textContent = "Use the webcam";
    return;
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("This browser offers no webcam here (it needs http://127.0.0.1 or https).", "error");
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio: false });
  } catch (e) {
    setStatus("The webcam could not be opened: " + e.message, "error");
    return;
  }
  video.srcObject = stream;
  await video.play();
  video.hidden = $("snap-btn").hidden = false;
  $("camera-btn").textContent = "Stop the webcam";
});
$("snap-btn").addEventListener("click", () => {
  const video = $("video");
  const c = document.createElement("canvas");
  c.width = video.videoWidth;
  c.height = video.videoHeight;
  c.getContext("2d").drawImage(video, 0, 0);
  c.toBlob((b) => b && analyse(b, "webcam.jpg"), "image/jpeg", 0.92);
});

for (const id of ["policy-match", "policy-uplift"]) $(id).addEventListener("change", refreshRecommendation);
$("top").addEventListener("change", refreshRecommendation);

fetch("/api/v1/model").then((r) => r.json()).then((m) => {
  $("model-line").textContent = "model " + m.arch + " (" + m.file + ", sha256 " + m.sha256.slice(0, 12) + "…), detector " + m.detector;
}).catch(() => {});
