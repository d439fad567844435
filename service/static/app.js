// ssd-dehaze web page: upload a photo, compare hazy and restored, download the result.
// Plain browser JavaScript, no libraries, no network access beyond this service.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const el = {
    status: $("status"), statusText: $("status-text"), drop: $("dropzone"), input: $("file-input"),
    hint: $("drop-hint"), method: $("method"), format: $("format"), quality: $("quality"),
    qualityField: $("quality-field"), qualityValue: $("quality-value"), error: $("error"),
    errorTitle: $("error-title"), errorText: $("error-text"), result: $("result"), busy: $("busy"),
    busyText: $("busy-text"), compare: $("compare"), side: $("side"), hazy: $("hazy-img"),
    restored: $("restored-img"), hazySide: $("hazy-side"), restoredSide: $("restored-side"),
    split: $("split"), noPreview: $("no-preview"), info: $("info"), download: $("download"),
    again: $("again"), viewSlider: $("view-slider"), viewSide: $("view-side"), modelLine: $("model-line"),
    strength: $("strength"), strengthValue: $("strength-value"), strengthField: $("strength-field"),
  };
  // photoId: the service's id of the last upload (X-Dehaze-Id): a new strength, format or quality is
  // then rendered from the haze it estimated, without uploading again or re-running the network
  const state = { info: null, file: null, hazyUrl: null, restoredUrl: null, controller: null, ready: false, photoId: null };
  const DISPLAYABLE = new Set(["image/png", "image/jpeg", "image/webp", "image/bmp"]);

  const mb = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1e3))} kB`);

  // ---------- service status ----------
  function setStatus(kind, text) {
    el.status.className = `status ${kind}`;
    el.statusText.textContent = text;
  }

  async function loadInfo() {
    try {
      const res = await fetch("/models", { cache: "no-store" });
      const info = await res.json();
      state.info = info;
      const model = info.model || {};
      const methods = info.methods || [];
      for (const opt of el.method.options) opt.disabled = methods.length > 0 && !methods.includes(opt.value);
      if (info.method) el.method.value = info.method;
      state.twoScale = Boolean(model.card && model.card.two_scale);
      syncStrength();
      const lim = info.limits || {};
      if (lim.max_upload_bytes) el.hint.textContent = `PNG, JPEG, TIFF, WebP or BMP · up to ${mb(lim.max_upload_bytes)}`;
      el.modelLine.textContent = model.name
        ? `Model: ${model.name}${model.backend ? ` · ${model.backend}` : ""}` : "Model: not loaded";
      state.ready = Boolean(info.ready);
      if (info.ready) setStatus("ready", `Ready · ${model.name || info.method}`);
      else if (info.error) setStatus("down", "Model failed to load");
      else { setStatus("loading", "Loading model…"); setTimeout(loadInfo, 1500); }
    } catch (err) {
      setStatus("down", "Service unreachable");
      setTimeout(loadInfo, 3000);
    }
  }

  // ---------- errors in plain words ----------
  function showError(title, text) {
    if (el.result.getAttribute("data-state") !== "done") el.result.hidden = true;  // no half-empty result card
    el.errorTitle.textContent = title;
    el.errorText.textContent = text;
    el.error.hidden = false;
  }
  function clearError() { el.error.hidden = true; }

  function explain(status, body, headers) {
    const detail = ((body && body.detail) || "").replace(/^image: /, "");
    const sentence = detail ? detail.charAt(0).toUpperCase() + detail.slice(1) : "";
    switch (status) {
      case 400: return ["This file could not be read as a photo", sentence || "The file is empty or damaged."];
      case 408: return ["The upload took too long", sentence];
      case 413: return ["This photo is too large", sentence];
      case 415: return ["This file type is not supported", sentence || "Use PNG, JPEG, TIFF, WebP or BMP."];
      case 422: return ["The request was not understood", sentence];
      case 503: {
        const wait = headers.get("Retry-After");
        if (body && body.error === "busy") {
          return ["The service is busy", `Other photos are being restored right now. Try again${wait ? ` in ${wait} s` : " in a moment"}.`];
        }
        return ["The service is not ready", sentence || "The model is still loading. Try again in a moment."];
      }
      default: return ["Something went wrong", sentence || `The service answered with status ${status}.`];
    }
  }

  // ---------- restoring ----------
  function outputFormat(file) {
    if (el.format.value) return el.format.value;
    // "same as the photo" unless the browser cannot show that type (TIFF): then PNG, lossless
    return file.type && !DISPLAYABLE.has(file.type) ? "png" : "";
  }

  function resetUrls(which) {
    if (which.includes("hazy") && state.hazyUrl) { URL.revokeObjectURL(state.hazyUrl); state.hazyUrl = null; }
    if (which.includes("restored") && state.restoredUrl) { URL.revokeObjectURL(state.restoredUrl); state.restoredUrl = null; }
  }

  function setBusy(on, text) {
    el.busy.hidden = !on;
    if (text) el.busyText.textContent = text;
    el.download.setAttribute("aria-disabled", String(on || !state.restoredUrl));
  }

  function fitCompare(w, h) {
    el.compare.style.aspectRatio = `${w} / ${h}`;
    el.compare.style.maxWidth = `calc(68vh * ${w / h})`;
  }

  function filenameFrom(res, fallback) {
    const cd = res.headers.get("Content-Disposition") || "";
    const m = cd.match(/filename="?([^";]+)"?/i);
    return m ? m[1] : fallback;
  }

  function queryParams(file) {
    const params = new URLSearchParams({ method: el.method.value });
    const fmt = outputFormat(file);
    if (fmt) params.set("format", fmt);
    if (fmt === "jpeg" || fmt === "webp" || (!fmt && /jpe?g|webp/.test(file.type))) params.set("quality", el.quality.value);
    if (strengthApplies()) params.set("strength", el.strength.value);
    return params;
  }

  async function restore(file) {
    clearError();
    const lim = (state.info && state.info.limits) || {};
    if (file.size === 0) return showError("This file is empty", `"${file.name}" has no content.`);
    if (lim.max_upload_bytes && file.size > lim.max_upload_bytes) {
      return showError("This photo is too large", `"${file.name}" is ${mb(file.size)}; the service accepts up to ${mb(lim.max_upload_bytes)}.`);
    }
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    state.file = file;
    state.photoId = null;

    resetUrls(["hazy", "restored"]);
    state.hazyUrl = URL.createObjectURL(file);
    el.result.hidden = false;
    el.result.removeAttribute("data-state");
    el.noPreview.hidden = true;
    for (const img of [el.hazy, el.hazySide]) img.src = state.hazyUrl;
    for (const img of [el.restored, el.restoredSide]) img.removeAttribute("src");
    el.info.textContent = `${file.name} · ${mb(file.size)}`;
    setBusy(true, `Restoring ${file.name}…`);

    const body = new FormData();
    body.append("image", file, file.name);
    await fetchResult(`/dehaze?${queryParams(file)}`, { method: "POST", body }, controller, file);
  }

  // the same photo at another strength, format or quality: no upload, the network does not run again
  async function rerender() {
    if (!state.photoId || !state.file) return restore(state.file);
    clearError();
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    setBusy(true, `Strength ${Number(el.strength.value).toFixed(2)}…`);
    const params = queryParams(state.file);
    params.delete("method");
    await fetchResult(`/dehaze/${state.photoId}?${params}`, {}, controller, state.file);
  }

  async function fetchResult(url, init, controller, file) {
    let res;
    const t0 = performance.now();
    try {
      res = await fetch(url, { ...init, signal: controller.signal });
    } catch (err) {
      if (controller.signal.aborted) return;
      setBusy(false);
      return showError("Could not reach the service", "Check that it is still running, then try again.");
    }
    if (state.controller !== controller) return;
    if (res.status === 404 && !init.method) return restore(file);  // the service no longer holds it: upload again
    if (!res.ok) {
      let data = null;
      try { data = await res.json(); } catch (_) { /* not JSON */ }
      setBusy(false);
      const [title, text] = explain(res.status, data, res.headers);
      return showError(title, text);
    }
    const blob = await res.blob();
    if (state.controller !== controller) return;
    resetUrls(["restored"]);
    state.restoredUrl = URL.createObjectURL(blob);
    state.photoId = res.headers.get("X-Dehaze-Id");
    const name = filenameFrom(res, "dehazed");
    for (const img of [el.restored, el.restoredSide]) img.src = state.restoredUrl;
    await el.restored.decode().catch(() => {});
    fitCompare(el.restored.naturalWidth || 4, el.restored.naturalHeight || 3);
    el.download.href = state.restoredUrl;
    el.download.download = name;
    setBusy(false);
    const secs = parseFloat(res.headers.get("X-Inference-Seconds") || "0");
    const total = (performance.now() - t0) / 1000;
    const size = res.headers.get("X-Image-Size") || `${el.restored.naturalWidth}×${el.restored.naturalHeight}`;
    const methodName = res.headers.get("X-Dehaze-Method") === "dcp" ? "dark channel prior" : res.headers.get("X-Dehaze-Model");
    const how = res.headers.get("X-Network-Ran") === "0" ? "re-rendered" : "restored";
    const strength = strengthApplies() ? ` · strength ${Number(el.strength.value).toFixed(2)}` : "";
    el.info.textContent = `${size.replace("x", " × ")} px · ${how} in ${secs.toFixed(2)} s (${total.toFixed(2)} s round trip) · ${methodName}${strength} · ${mb(blob.size)}`;
    el.result.setAttribute("data-state", "done");
  }

  // ---------- input: picker, drag and drop, paste ----------
  el.input.addEventListener("change", () => { if (el.input.files[0]) restore(el.input.files[0]); el.input.value = ""; });
  el.drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); el.input.click(); } });
  for (const type of ["dragenter", "dragover"]) {
    el.drop.addEventListener(type, (e) => { e.preventDefault(); el.drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) el.drop.addEventListener(type, () => el.drop.classList.remove("over"));
  el.drop.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) restore(file);
  });
  // a photo dropped anywhere else must not make the browser navigate away
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => { e.preventDefault(); const f = e.dataTransfer && e.dataTransfer.files[0]; if (f) restore(f); });
  window.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData ? e.clipboardData.items : [])].find((i) => i.kind === "file");
    if (item) restore(item.getAsFile());
  });

  // ---------- options and views ----------
  function syncQuality() {
    const lossy = el.format.value === "jpeg" || el.format.value === "webp" || (!el.format.value && state.file && /jpe?g|webp/.test(state.file.type));
    el.qualityField.hidden = !lossy;
  }
  function strengthApplies() { return state.twoScale !== false && el.method.value === "model"; }
  function syncStrength() {
    el.strengthField.hidden = !strengthApplies();
    el.strengthValue.textContent = Number(el.strength.value).toFixed(2);
  }
  el.quality.addEventListener("input", () => { el.qualityValue.textContent = el.quality.value; });
  el.method.addEventListener("change", () => { syncQuality(); syncStrength(); if (state.file) restore(state.file); });
  for (const control of [el.format, el.quality]) {
    control.addEventListener("change", () => { syncQuality(); if (state.file) rerender(); });
  }
  let strengthTimer = null;
  el.strength.addEventListener("input", () => {
    syncStrength();
    clearTimeout(strengthTimer);  // while dragging: one request when the hand rests
    strengthTimer = setTimeout(() => { if (state.file) rerender(); }, 200);
  });
  el.split.addEventListener("input", () => el.compare.style.setProperty("--split", `${el.split.value}%`));
  el.hazy.addEventListener("error", () => { if (el.hazy.getAttribute("src")) el.noPreview.hidden = false; });

  function setView(side) {
    el.side.hidden = !side;
    el.compare.hidden = side;
    el.viewSide.classList.toggle("active", side);
    el.viewSlider.classList.toggle("active", !side);
    el.viewSide.setAttribute("aria-pressed", String(side));
    el.viewSlider.setAttribute("aria-pressed", String(!side));
  }
  el.viewSlider.addEventListener("click", () => setView(false));
  el.viewSide.addEventListener("click", () => setView(true));
  el.again.addEventListener("click", () => {
    if (state.controller) state.controller.abort();
    resetUrls(["hazy", "restored"]);
    state.file = null;
    state.photoId = null;
    el.result.hidden = true;
    el.result.removeAttribute("data-state");
    clearError();
    el.input.click();
  });

  syncQuality();
  loadInfo();
})();
