/* mp3svc web page: log in with the cookie session, upload videos, follow and fetch the MP3s.
   Plain modern JavaScript, no build step. The session token lives in an HttpOnly cookie that this
   script never sees; every call goes to this page's own origin. */
"use strict";

(() => {
  const ACTIVE = new Set(["queued", "converting"]);
  const POLL_MS = 1000;
  const PARALLEL_UPLOADS = 2;
  const TUS_CHUNK_BYTES = 50 * 1024 * 1024; // below the 100 MB that some proxies allow per request
  const ARCHIVE_MAX_JOBS = 100; // POST /jobs/archive takes at most this many
  const TIME_RE = /^(\d+(\.\d+)?|(\d+:)?\d{1,2}:\d{2}(\.\d{1,3})?)$/;

  const $ = (selector, root = document) => root.querySelector(selector);
  const el = {
    loading: $("#loading"),
    authView: $("#auth-view"),
    appView: $("#app-view"),
    who: $("#who"),
    whoEmail: $("#who-email"),
    logout: $("#logout"),
    authForm: $("#auth-form"),
    email: $("#email"),
    password: $("#password"),
    register: $("#register"),
    authError: $("#auth-error"),
    uploadForm: $("#upload-form"),
    drop: $("#drop"),
    video: $("#video"),
    picked: $("#picked"),
    options: $("#options"),
    uploadError: $("#upload-error"),
    convert: $("#convert"),
    jobs: $("#jobs"),
    jobsEmpty: $("#jobs-empty"),
    jobsTitle: $("#jobs-title"),
    announcer: $("#announcer"),
    confirm: $("#confirm"),
    confirmText: $("#confirm-text"),
    template: $("#job-template"),
    downloadSelected: $("#download-selected"),
    selectedCount: $("#selected-count"),
    archiveError: $("#archive-error"),
  };

  const state = {
    email: null,
    items: new Map(), // key (job id, or "local-N" while uploading) -> item
    selected: new Set(), // ids of finished jobs ticked for "Download selected"
    picked: [],
    queue: [], // items waiting for an upload slot
    uploading: 0,
    tus: window.tus && window.tus.isSupported ? "unknown" : "off", // "off" after a 404/405
    pollTimer: null,
    localCounter: 0,
    generation: 0, // bumped at log-out so late answers of the old session are ignored
  };

  class ApiError extends Error {
    constructor(status, code, message, retryAfter = 0) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  function errorFrom(status, body, retryAfterHeader) {
    const code = (body && body.error) || (status ? `http_${status}` : "network");
    const message = (body && body.message) ||
      (status ? `The server answered ${status}.` : "The server could not be reached. Check the connection.");
    return new ApiError(status, code, message, Number(retryAfterHeader) || 0);
  }

  async function api(method, path, body, { quiet401 = false } = {}) {
    const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      throw errorFrom(0, null);
    }
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch (_) { data = null; }
    }
    if (!response.ok) {
      const error = errorFrom(response.status, data, response.headers.get("Retry-After"));
      if (response.status === 401 && !quiet401 && state.email) {
        signedOut("Your session has ended. Log in again to see your conversions.");
      }
      throw error;
    }
    return data;
  }

  // --- announcements (aria-live) ------------------------------------------------------------
  let announceTimer = null;
  let announceQueue = [];
  function announce(message) {
    if (!message) return;
    announceQueue.push(message);
    clearTimeout(announceTimer);
    announceTimer = setTimeout(() => {
      el.announcer.textContent = announceQueue.join(" ");
      announceQueue = [];
    }, 120);
  }

  // --- formatting ---------------------------------------------------------------------------
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  function formatDate(iso) {
    const date = iso ? new Date(iso) : null;
    return date && !Number.isNaN(date.getTime()) ? dateFormat.format(date) : "";
  }
  function formatBytes(bytes) {
    if (typeof bytes !== "number" || !Number.isFinite(bytes)) return "";
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
    return unit === 0 ? `${value} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  }
  function formatDuration(seconds) {
    if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "";
    const total = Math.round(seconds);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }
  const percent = (fraction) => `${Math.floor(Math.max(0, Math.min(1, fraction)) * 100)} %`;

  // --- views --------------------------------------------------------------------------------
  function show(view) {
    el.loading.hidden = true;
    el.authView.hidden = view !== "auth";
    el.appView.hidden = view !== "app";
    el.who.hidden = view !== "app";
  }

  function signedIn(email, message) {
    state.email = email;
    el.whoEmail.textContent = email;
    el.password.value = "";
    show("app");
    announce(message);
    loadJobs();
  }

  function signedOut(message) {
    state.generation += 1;
    state.email = null;
    for (const item of state.items.values()) {
      if (item.abort) item.abort();
    }
    state.items.clear();
    state.selected.clear();
    renderSelection();
    state.queue = [];
    state.picked = [];
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
    el.jobs.replaceChildren();
    tokens.reset();
    renderPicked();
    el.authError.textContent = message && message.startsWith("Your session") ? message : "";
    show("auth");
    announce(message);
    el.email.focus();
  }

  // the account flows (accounts.js): links from emails, reset, change password, delete account
  const accounts = window.mp3svcAccounts({ api, show, signedOut, announce, el });
  // API tokens for scripts (tokens.js)
  const tokens = window.mp3svcTokens({ api, announce, formatDate });

  async function boot() {
    if (accounts.openLink()) return; // /verify?token= or /reset?token=
    try {
      const me = await api("GET", "/session", undefined, { quiet401: true });
      signedIn(me.email);
    } catch (error) {
      show("auth");
      if (error.status !== 401) el.authError.textContent = error.message;
    }
  }

  // --- log in, register, log out ------------------------------------------------------------
  function fieldError(input, message) {
    input.setAttribute("aria-invalid", "true");
    el.authError.textContent = message;
    input.focus();
  }

  async function authenticate(register) {
    el.authError.textContent = "";
    el.email.removeAttribute("aria-invalid");
    el.password.removeAttribute("aria-invalid");
    const email = el.email.value.trim();
    const password = el.password.value;
    if (!email || !el.email.validity.valid) return fieldError(el.email, "Enter your email address.");
    if (!password) return fieldError(el.password, "Enter your password.");
    if (register && password.length < 8) {
      return fieldError(el.password, "Choose a password of at least 8 characters.");
    }
    const buttons = el.authForm.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    accounts.clearStatus();
    try {
      if (register) await api("POST", "/register", { email, password });
      const session = await api("POST", "/session", { email, password }, { quiet401: true });
      signedIn(session.email, register ? "Account created. You are logged in." : "You are logged in.");
      el.main.focus();
    } catch (error) {
      // a new address confirms itself first (a taken one answers the same; its password decides)
      if (accounts.unconfirmed(error, register, email)) return;
      el.authError.textContent = error.message;
      announce(error.message);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }
  el.main = $("#main");

  el.authForm.addEventListener("submit", (event) => {
    event.preventDefault();
    authenticate(false);
  });
  el.register.addEventListener("click", () => authenticate(true));

  el.logout.addEventListener("click", async () => {
    el.logout.disabled = true;
    try {
      await api("DELETE", "/session", undefined, { quiet401: true });
    } catch (_) {
      /* the cookie is gone or was never valid: logged out either way */
    } finally {
      el.logout.disabled = false;
    }
    signedOut("You are logged out.");
  });

  // --- choosing files -----------------------------------------------------------------------
  function addPicked(files) {
    const known = new Set(state.picked.map((f) => `${f.name}|${f.size}|${f.lastModified}`));
    for (const file of files) {
      const key = `${file.name}|${file.size}|${file.lastModified}`;
      if (!known.has(key)) {
        state.picked.push(file);
        known.add(key);
      }
    }
    el.uploadError.textContent = "";
    renderPicked();
    const n = state.picked.length;
    announce(n === 1 ? "1 file chosen." : `${n} files chosen.`);
  }

  function renderPicked() {
    el.picked.replaceChildren(...state.picked.map((file, index) => {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = file.name;
      const size = document.createElement("span");
      size.className = "size";
      size.textContent = formatBytes(file.size);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "ghost";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove ${file.name}`);
      remove.addEventListener("click", () => {
        state.picked.splice(index, 1);
        renderPicked();
        announce(`${file.name} removed.`);
        el.video.focus();
      });
      const right = document.createElement("span");
      right.className = "actions";
      right.append(size, remove);
      li.append(name, right);
      return li;
    }));
  }

  el.video.addEventListener("change", () => {
    addPicked(Array.from(el.video.files));
    el.video.value = "";
  });
  // Dropping files anywhere on the signed-in page adds them; elsewhere the browser would open them.
  let dragDepth = 0;
  window.addEventListener("dragenter", (event) => {
    if (el.appView.hidden || !event.dataTransfer || !event.dataTransfer.types.includes("Files")) return;
    dragDepth += 1;
    el.drop.classList.add("dragging");
  });
  window.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) el.drop.classList.remove("dragging");
  });
  window.addEventListener("dragover", (event) => {
    if (event.dataTransfer && event.dataTransfer.types.includes("Files")) event.preventDefault();
  });
  window.addEventListener("drop", (event) => {
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    event.preventDefault();
    dragDepth = 0;
    el.drop.classList.remove("dragging");
    if (!el.appView.hidden) addPicked(Array.from(event.dataTransfer.files));
  });

  // --- options ------------------------------------------------------------------------------
  const optionFields = el.options.querySelectorAll("[name]");
  const quality = $("#opt-quality");
  const bitrate = $("#opt-bitrate");
  const cover = $("#opt-cover");
  const coverTime = $("#opt-cover-time");
  const summary = el.options.querySelector("summary");

  function syncOptions() {
    quality.disabled = bitrate.value !== "";
    if (quality.disabled) quality.value = "";
    $("#cover-time-field").hidden = cover.value !== "time";
    const count = Object.keys(readOptions(false).options).length;
    summary.textContent = count ? `Options (${count} set)` : "Options";
  }
  el.options.addEventListener("input", syncOptions);
  el.options.addEventListener("change", syncOptions);

  /** The chosen options as the API's field names and string values; only what differs from
   *  the defaults is sent. With `check`, the first bad field is reported and focused. */
  function readOptions(check = true) {
    const options = {};
    let error = null;
    const fail = (input, message) => {
      if (!error) {
        error = message;
        if (check) {
          el.options.open = true;
          input.setAttribute("aria-invalid", "true");
          input.focus();
        }
      }
    };
    for (const input of optionFields) input.removeAttribute("aria-invalid");
    for (const input of optionFields) {
      const name = input.name;
      if (input.type === "checkbox") {
        if (name === "tags" && !input.checked) options.tags = "false";
        if (name === "normalize" && input.checked) options.normalize = "true";
        continue;
      }
      const value = input.value.trim();
      if (!value || input.disabled) continue;
      if ((name === "start" || name === "end") && !TIME_RE.test(value)) {
        fail(input, `${name === "start" ? "Start" : "End"}: use seconds (12.5) or [HH:]MM:SS.`);
        continue;
      }
      if (name === "audio_track" && !/^\d+$/.test(value)) {
        fail(input, "Audio track: a whole number, 0 for the first.");
        continue;
      }
      if (name === "cover" && value === "time") {
        const at = coverTime.value.trim();
        if (!at || Number.isNaN(Number(at)) || Number(at) < 0) {
          fail(coverTime, "Cover frame: enter the time in seconds.");
        } else {
          options.cover = at;
        }
        continue;
      }
      options[name] = value;
    }
    return { options, error };
  }

  // --- uploads ------------------------------------------------------------------------------
  el.uploadForm.addEventListener("submit", (event) => {
    event.preventDefault();
    el.uploadError.textContent = "";
    if (!state.picked.length) {
      el.uploadError.textContent = "Choose at least one video first.";
      el.video.focus();
      return;
    }
    const { options, error } = readOptions(true);
    if (error) {
      el.uploadError.textContent = error;
      return;
    }
    const files = state.picked;
    state.picked = [];
    renderPicked();
    const now = Date.now();
    files.forEach((file, index) => {
      state.localCounter += 1;
      const item = {
        key: `local-${state.localCounter}`, job: null, file, options, phase: "waiting",
        fraction: 0, error: null, sortTime: now + files.length - index, note: "Waiting to upload",
      };
      state.items.set(item.key, item);
      state.queue.push(item);
      renderItem(item);
    });
    placeItems();
    announce(files.length === 1 ? `Uploading ${files[0].name}.` : `Uploading ${files.length} files.`);
    pump();
  });

  function pump() {
    while (state.uploading < PARALLEL_UPLOADS && state.queue.length) {
      const item = state.queue.shift();
      if (state.items.get(item.key) !== item) continue; // cancelled meanwhile
      startUpload(item);
    }
  }

  async function startUpload(item) {
    const generation = state.generation;
    state.uploading += 1;
    item.phase = "uploading";
    item.note = null;
    item.error = null;
    item.fraction = 0;
    renderItem(item);
    try {
      let jobId;
      if (state.tus !== "off") {
        try {
          jobId = await uploadTus(item);
          state.tus = "on";
        } catch (error) {
          if (!error.tusMissing) throw error;
          state.tus = "off";
        }
      }
      if (jobId === undefined) jobId = await uploadMultipart(item);
      if (generation !== state.generation) return;
      becomeJob(item, { job_id: jobId, status: "queued", filename: item.file.name });
      announce(`${item.file.name} uploaded: queued.`);
      refreshJob(jobId);
    } catch (error) {
      if (generation !== state.generation || state.items.get(item.key) !== item) return;
      item.abort = null;
      if (error.status === 429) {
        const wait = Math.max(2, error.retryAfter || 5);
        item.phase = "waiting";
        item.note = `Waiting: ${error.message}`;
        renderItem(item);
        setTimeout(() => {
          if (state.items.get(item.key) === item) {
            state.queue.unshift(item);
            pump();
          }
        }, wait * 1000);
      } else if (error.code !== "aborted") {
        item.phase = "failed";
        item.error = error.message;
        renderItem(item);
        announce(`${item.file.name} failed: ${error.message}`);
      }
    } finally {
      state.uploading -= 1;
      if (generation === state.generation) pump();
    }
  }

  function onUploadProgress(item, sent, total) {
    item.fraction = total ? sent / total : 0;
    renderItem(item);
  }

  /** Resumable upload (tus 1.0.0) to /uploads; resolves to the job id. A server without the tus
   *  endpoint (404/405 on creation) rejects with `tusMissing` so the caller falls back. */
  function uploadTus(item) {
    return new Promise((resolve, reject) => {
      let created = false;
      const upload = new window.tus.Upload(item.file, {
        endpoint: "/uploads",
        metadata: Object.assign({ filename: item.file.name }, item.options),
        chunkSize: TUS_CHUNK_BYTES,
        retryDelays: [0, 1000, 3000, 5000, 10000],
        storeFingerprintForResuming: false,
        onUploadUrlAvailable: () => { created = true; },
        onProgress: (sent, total) => onUploadProgress(item, sent, total),
        onSuccess: () => resolve(decodeURIComponent(upload.url.split("?")[0].split("/").pop())),
        onError: (error) => {
          const response = error.originalResponse;
          const status = response ? response.getStatus() : 0;
          if (!created && (status === 404 || status === 405)) {
            reject(Object.assign(new Error("no tus endpoint"), { tusMissing: true }));
            return;
          }
          let body = null;
          try { body = JSON.parse(response.getBody()); } catch (_) { body = null; }
          reject(errorFrom(status, body, response ? response.getHeader("Retry-After") : 0));
        },
      });
      item.abort = () => {
        upload.abort(true).catch(() => {});
        reject(new ApiError(0, "aborted", "Upload cancelled."));
      };
      upload.start();
    });
  }

  /** One multipart POST /upload with upload progress; resolves to the job id. */
  function uploadMultipart(item) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      for (const [name, value] of Object.entries(item.options)) form.append(name, value);
      form.append("file", item.file, item.file.name); // options first: the server streams the file
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/upload");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onUploadProgress(item, event.loaded, event.total);
      });
      xhr.addEventListener("load", () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
        if (xhr.status >= 200 && xhr.status < 300 && body && body.job_id) {
          resolve(body.job_id);
        } else {
          if (xhr.status === 401) signedOut("Your session has ended. Log in again to see your conversions.");
          reject(errorFrom(xhr.status, body, xhr.getResponseHeader("Retry-After")));
        }
      });
      xhr.addEventListener("error", () => reject(errorFrom(0, null)));
      xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "Upload cancelled.")));
      item.abort = () => xhr.abort();
      xhr.send(form);
    });
  }

  // --- jobs ---------------------------------------------------------------------------------
  function becomeJob(item, job) {
    state.items.delete(item.key);
    item.key = job.job_id;
    item.abort = null;
    const existing = state.items.get(job.job_id);
    if (existing && existing !== item) { // the list refresh saw it first
      existing.el.remove();
    }
    state.items.set(item.key, item);
    updateJob(item, job);
  }

  function updateJob(item, job) {
    const before = item.job ? item.job.status : null;
    item.job = Object.assign({}, item.job, job);
    item.sortTime = Date.parse(item.job.created_at) || item.sortTime || Date.now();
    renderItem(item);
    const name = item.job.filename;
    if (before && before !== item.job.status) {
      if (item.job.status === "done") announce(`${name} is done. Its MP3 is ready to download.`);
      else if (item.job.status === "failed") announce(`${name} failed: ${item.job.error || "no reason given"}`);
      else announce(`${name}: ${item.job.status}.`);
    }
  }

  async function loadJobs() {
    const generation = state.generation;
    let body;
    try {
      body = await api("GET", "/jobs");
    } catch (error) {
      if (error.status !== 401) el.uploadError.textContent = error.message;
      return;
    }
    if (generation !== state.generation) return;
    const seen = new Set();
    for (const job of body.jobs || []) {
      seen.add(job.job_id);
      let item = state.items.get(job.job_id);
      if (!item) {
        item = { key: job.job_id, job: null, sortTime: 0 };
        state.items.set(item.key, item);
      }
      updateJob(item, job);
    }
    for (const [key, item] of state.items) {
      if (item.job && !seen.has(key)) removeItem(item);
    }
    placeItems();
    schedulePoll();
  }

  async function refreshJob(jobId) {
    const generation = state.generation;
    try {
      const job = await api("GET", `/jobs/${encodeURIComponent(jobId)}`);
      const item = state.items.get(jobId);
      if (item && generation === state.generation) updateJob(item, job);
    } catch (error) {
      if (error.status === 404) {
        const item = state.items.get(jobId);
        if (item) removeItem(item);
      }
    }
    placeItems();
    schedulePoll();
  }

  function schedulePoll() {
    if (state.pollTimer || !state.email) return;
    const active = [...state.items.values()].some((item) => item.job && ACTIVE.has(item.job.status));
    if (!active) return;
    state.pollTimer = setTimeout(async () => {
      const ids = [...state.items.values()]
        .filter((item) => item.job && ACTIVE.has(item.job.status)).map((item) => item.key);
      await Promise.all(ids.map((id) => refreshJob(id)));
      state.pollTimer = null;
      schedulePoll();
    }, POLL_MS);
  }

  function removeItem(item) {
    state.items.delete(item.key);
    if (state.selected.delete(item.key)) renderSelection();
    if (item.el) item.el.remove();
    updateEmpty();
  }

  function placeItems() {
    const ordered = [...state.items.values()].sort((a, b) => b.sortTime - a.sortTime);
    ordered.forEach((item, index) => {
      if (!item.el) renderItem(item);
      if (el.jobs.children[index] !== item.el) el.jobs.insertBefore(item.el, el.jobs.children[index] || null);
    });
    updateEmpty();
  }

  function updateEmpty() {
    el.jobsEmpty.hidden = state.items.size > 0;
  }

  function renderItem(item) {
    if (!item.el) {
      item.el = el.template.content.firstElementChild.cloneNode(true);
      item.el.querySelector(".delete").addEventListener("click", () => onDelete(item));
      item.el.querySelector(".select").addEventListener("change", (event) => {
        if (event.target.checked) state.selected.add(item.key);
        else state.selected.delete(item.key);
        renderSelection();
      });
      if (!item.el.isConnected) el.jobs.prepend(item.el);
    }
    const node = item.el;
    const job = item.job;
    const name = job ? job.filename : item.file.name;
    const status = job ? job.status : item.phase;
    node.className = `job s-${status}`;
    node.dataset.key = item.key;
    if (job) node.dataset.jobId = job.job_id;
    const nameNode = node.querySelector(".job-name");
    nameNode.textContent = name;
    nameNode.title = name;
    nameNode.id = `name-${item.key}`;
    const badge = node.querySelector(".badge");
    badge.textContent = status;
    badge.className = `badge s-${status}`;

    const bar = node.querySelector("progress");
    const pct = node.querySelector(".pct");
    const barBox = node.querySelector(".job-progress");
    let fraction = null;
    let showBar = true;
    if (!job && item.phase === "uploading") {
      fraction = item.fraction;
      bar.setAttribute("aria-label", `Upload of ${name}`);
    } else if (job && ACTIVE.has(job.status)) {
      fraction = job.status === "converting" && typeof job.progress === "number" ? job.progress : null;
      bar.setAttribute("aria-label", `Conversion of ${name}`);
    } else {
      showBar = false;
    }
    barBox.hidden = !showBar;
    if (fraction === null) {
      bar.removeAttribute("value"); // indeterminate
      pct.textContent = "";
    } else {
      bar.value = fraction;
      pct.textContent = percent(fraction);
    }

    const error = job ? (job.status === "failed" ? job.error || "The conversion failed." : null) : item.error;
    node.querySelector(".job-error").textContent = error || "";

    const meta = [];
    if (item.note) meta.push(item.note);
    if (!job && item.file) meta.push(formatBytes(item.file.size));
    if (job) {
      if (job.status === "done") {
        if (typeof job.duration === "number") meta.push(formatDuration(job.duration));
        if (typeof job.size === "number") meta.push(`MP3 ${formatBytes(job.size)}`);
      }
      const added = formatDate(job.created_at);
      if (added) meta.push(`Added ${added}`);
      const expires = formatDate(job.expires_at);
      if (expires) meta.push(`Deleted after ${expires}`);
    }
    node.querySelector(".job-meta").textContent = meta.join(" · ");

    const download = node.querySelector(".download");
    const canDownload = Boolean(job && job.status === "done" && job.mp3_id);
    const select = node.querySelector(".select");
    select.hidden = !canDownload;
    select.setAttribute("aria-label", `Select ${name}`);
    if (!canDownload && state.selected.delete(item.key)) renderSelection();
    select.checked = canDownload && state.selected.has(item.key);
    download.hidden = !canDownload;
    if (canDownload) {
      download.href = `/download?fid=${encodeURIComponent(job.mp3_id)}`;
      download.setAttribute("download", "");
      download.setAttribute("aria-describedby", nameNode.id);
    }
    const del = node.querySelector(".delete");
    del.setAttribute("aria-describedby", nameNode.id);
    if (job) {
      del.textContent = "Delete";
    } else {
      del.textContent = item.phase === "failed" ? "Dismiss" : "Cancel upload";
    }
  }

  // --- download selected: one ZIP of the ticked jobs' MP3s (POST /jobs/archive) -------------
  function renderSelection() {
    const count = state.selected.size;
    el.selectedCount.textContent = count ? `${count} selected` : "";
    el.downloadSelected.disabled = count === 0 || el.downloadSelected.getAttribute("aria-busy") === "true";
  }

  function filenameOf(response) {
    const header = response.headers.get("Content-Disposition") || "";
    const match = /filename="([^"]+)"/.exec(header);
    return match ? match[1] : "mp3svc.zip";
  }

  async function downloadSelected() {
    // in the order the list shows them, which is the order the archive holds them in
    const ids = [...el.jobs.children].map((node) => node.dataset.jobId).filter((id) => state.selected.has(id));
    el.archiveError.textContent = "";
    if (ids.length > ARCHIVE_MAX_JOBS) {
      el.archiveError.textContent = `Select at most ${ARCHIVE_MAX_JOBS} at a time.`;
      return;
    }
    const generation = state.generation;
    el.downloadSelected.setAttribute("aria-busy", "true");
    renderSelection();
    announce(`Preparing ${ids.length} MP3s as one ZIP file.`);
    try {
      const response = await fetch("/jobs/archive", {
        method: "POST", credentials: "same-origin", cache: "no-store",
        headers: { "Content-Type": "application/json", Accept: "application/zip, application/json" },
        body: JSON.stringify({ job_ids: ids }),
      });
      if (!response.ok) {
        let data = null;
        try { data = await response.json(); } catch (_) { data = null; }
        throw errorFrom(response.status, data, response.headers.get("Retry-After"));
      }
      const blob = await response.blob();
      if (generation !== state.generation) return;
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = filenameOf(response);
      link.hidden = true;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60000);
      announce(`${link.download} downloaded.`);
    } catch (error) {
      const failure = error instanceof ApiError ? error : errorFrom(0, null);
      if (failure.status === 401 && state.email) {
        signedOut("Your session has ended. Log in again to see your conversions.");
        return;
      }
      el.archiveError.textContent = failure.message;
      if (failure.status === 404 || failure.status === 409) loadJobs(); // one went meanwhile
    } finally {
      el.downloadSelected.removeAttribute("aria-busy");
      renderSelection();
    }
  }
  el.downloadSelected.addEventListener("click", downloadSelected);

  // --- delete -------------------------------------------------------------------------------
  function confirmDelete(name) {
    return new Promise((resolve) => {
      el.confirmText.textContent = `“${name}” and its MP3 will be removed from the server. This cannot be undone.`;
      el.confirm.returnValue = "";
      el.confirm.addEventListener("close", () => resolve(el.confirm.returnValue === "ok"), { once: true });
      el.confirm.showModal();
    });
  }

  function focusAfterRemoving(item) {
    const next = item.el.nextElementSibling || item.el.previousElementSibling;
    return () => {
      const target = next && next.isConnected ? next.querySelector(".delete") : null;
      if (target) target.focus();
      else {
        el.jobsTitle.tabIndex = -1;
        el.jobsTitle.focus();
      }
    };
  }

  async function onDelete(item) {
    if (!item.job) { // still uploading, or its upload failed: nothing on the server to confirm
      if (item.abort) item.abort();
      const refocus = focusAfterRemoving(item);
      removeItem(item);
      refocus();
      announce(`${item.file.name} removed.`);
      return;
    }
    const name = item.job.filename;
    if (!(await confirmDelete(name))) {
      item.el.querySelector(".delete").focus();
      return;
    }
    try {
      await api("DELETE", `/jobs/${encodeURIComponent(item.job.job_id)}`);
    } catch (error) {
      if (error.status !== 404) {
        item.el.querySelector(".job-error").textContent = error.message;
        announce(`Could not delete ${name}: ${error.message}`);
        item.el.querySelector(".delete").focus();
        return;
      }
    }
    const refocus = focusAfterRemoving(item);
    removeItem(item);
    refocus();
    announce(`${name} deleted.`);
  }

  boot();
})();
