// coffer console: a small client of coffer's HTTP API. The token lives in sessionStorage and
// travels only in the Authorization header; every value from the server is shown as text.

const $ = (id) => document.getElementById(id);
const PAGE = 20;
const state = { token: null, categories: [], category: null, cursors: [null], page: 0 };

function readTokenFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (token) {
    sessionStorage.setItem("coffer-token", token);
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data?.error?.message || `HTTP ${res.status}`);
    err.code = data?.error?.code || "http-error";
    err.status = res.status;
    throw err;
  }
  return data;
}

function message(text, kind = "") {
  const el = $("message");
  el.textContent = text;
  el.className = kind;
}

function size(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function showSignin(error = "") {
  $("signin").hidden = false;
  $("app").hidden = true;
  $("signout").hidden = true;
  $("signin-error").textContent = error;
}

async function start() {
  readTokenFromFragment();
  state.token = sessionStorage.getItem("coffer-token");
  if (!state.token) return showSignin();
  try {
    const { categories } = await api("GET", "/v1/categories");
    state.categories = categories;
  } catch (e) {
    sessionStorage.removeItem("coffer-token");
    return showSignin(`${e.code}: ${e.message}`);
  }
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  $("tenant").textContent = `tenant ${claims(state.token).tenant_id ?? "?"}${claims(state.token).read_only ? " (read-only)" : ""}`;
  renderTabs();
  selectCategory(state.categories[0]?.name);
  refreshUsage();
}

function renderTabs() {
  const nav = $("tabs");
  nav.replaceChildren();
  for (const c of state.categories) {
    const b = document.createElement("button");
    b.textContent = c.name;
    b.dataset.category = c.name;
    b.setAttribute("role", "tab");
    b.addEventListener("click", () => selectCategory(c.name));
    nav.append(b);
  }
}

function selectCategory(name) {
  state.category = name;
  for (const b of $("tabs").children) b.setAttribute("aria-selected", String(b.dataset.category === name));
  const c = state.categories.find((c) => c.name === name);
  if (c) $("limits").textContent = `Up to ${size(c.max_size)}; accepted types: ${c.allowed_types.join(", ")}`;
  resetPages();
}

function resetPages() {
  state.cursors = [null];
  state.page = 0;
  loadPage();
}

async function loadPage() {
  const q = new URLSearchParams({ category: state.category, limit: PAGE, sort: $("sort").value });
  const prefix = $("prefix").value.trim();
  if (prefix) q.set("prefix", prefix);
  const cursor = state.cursors[state.page];
  if (cursor) q.set("cursor", cursor);
  try {
    const page = await api("GET", `/v1/files?${q}`);
    renderFiles(page.files);
    state.cursors[state.page + 1] = page.next_cursor;
    $("next-page").disabled = !page.next_cursor;
    $("first-page").disabled = state.page === 0;
  } catch (e) {
    message(`${e.code}: ${e.message}`, "error");
  }
}

function renderFiles(files) {
  const body = $("files").querySelector("tbody");
  body.replaceChildren();
  $("empty").hidden = files.length > 0;
  for (const f of files) {
    const tr = document.createElement("tr");
    tr.dataset.key = f.key;
    for (const text of [f.filename, size(f.size), f.content_type, new Date(f.created_at).toLocaleString()]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const actions = document.createElement("td");
    actions.className = "actions";
    const button = (label, handler) => {
      const b = document.createElement("button");
      b.textContent = label;
      b.addEventListener("click", () => handler(f));
      actions.append(b);
    };
    // The server decides what may be shown inline (an allow-list); nothing else is previewed.
    if (f.inline) button("Preview", preview);
    button("Copy link", share);
    button("Download", download);
    button("Delete", remove);
    tr.append(actions);
    body.append(tr);
  }
}

async function refreshUsage() {
  try {
    const u = await api("GET", "/v1/usage");
    const quota = u.quota.bytes ? ` of ${size(u.quota.bytes)}` : "";
    $("usage").textContent = `${u.files} ${u.files === 1 ? "file" : "files"}, ${size(u.bytes)}${quota}`;
  } catch {
    $("usage").textContent = "";
  }
}

// Files above this size go through tus, in chunks: a dropped connection is retried from the
// server's offset, and after a page reload picking the same file again continues the upload
// (its URL is kept in localStorage under the file's name, size and date).
const RESUMABLE_OVER = Number(localStorage.getItem("coffer-resumable-over")) || 16 * 1024 * 1024;
const CHUNK = Number(localStorage.getItem("coffer-chunk")) || 4 * 1024 * 1024;

function fingerprint(file) {
  return `coffer-upload:${claims(state.token).tenant_id}:${state.category}:${file.name}:${file.size}:${file.lastModified}`;
}

function describeError(code, message) {
  return ({
    "too-large": "too large for this category",
    "quota-exceeded": "over the storage quota",
    "unsupported-media-type": "this type of file is not accepted here",
    "already-exists": "a file with this name exists",
  }[code] ?? message ?? "upload failed");
}

/** One tus request: resolves with the XHR (any status), rejects on a network error. */
function tusRequest(method, url, headers, body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.setRequestHeader("Authorization", `Bearer ${state.token}`);
    xhr.setRequestHeader("Tus-Resumable", "1.0.0");
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    if (onProgress) xhr.upload.addEventListener("progress", (e) => onProgress(e.loaded));
    xhr.addEventListener("load", () => resolve(xhr));
    xhr.addEventListener("error", () => reject(new Error("network error")));
    xhr.addEventListener("abort", () => reject(new Error("aborted")));
    xhr.send(body ?? null);
  });
}

function tusError(xhr) {
  let data = {};
  try { data = JSON.parse(xhr.responseText); } catch {}
  const err = new Error(data?.error?.message ?? `HTTP ${xhr.status}`);
  err.code = data?.error?.code ?? `HTTP ${xhr.status}`;
  err.status = xhr.status;
  return err;
}

async function tusOffset(url) {
  const head = await tusRequest("HEAD", url, {});
  if (head.status !== 200) return null;
  return Number(head.getResponseHeader("Upload-Offset"));
}

async function uploadResumable(file, overwrite, bar, status) {
  const key = fingerprint(file);
  let url = localStorage.getItem(key);
  let offset = null;
  if (url) {
    offset = await tusOffset(url).catch(() => null);
    if (offset === null) localStorage.removeItem(key);
    else status.textContent = `resuming at ${Math.floor((100 * offset) / file.size)}%`;
  }
  if (offset === null) {
    const meta = { filename: file.name, category: state.category };
    if (file.type) meta.content_type = file.type;
    if (overwrite) meta.overwrite = "true";
    const encoded = Object.entries(meta)
      .map(([k, v]) => `${k} ${btoa(String.fromCharCode(...new TextEncoder().encode(v)))}`)
      .join(",");
    const created = await tusRequest("POST", "/v1/uploads", { "Upload-Length": String(file.size), "Upload-Metadata": encoded });
    if (created.status !== 201) throw tusError(created);
    url = new URL(created.getResponseHeader("Location"), location.href).pathname;
    localStorage.setItem(key, url);
    offset = 0;
  }
  let failures = 0;
  while (offset < file.size) {
    bar.value = offset;
    const end = Math.min(offset + CHUNK, file.size);
    let res;
    try {
      res = await tusRequest("PATCH", url, { "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" },
        file.slice(offset, end), (sent) => { bar.value = offset + sent; });
    } catch {
      res = null;
    }
    if (res && res.status === 204) {
      failures = 0;
      offset = Number(res.getResponseHeader("Upload-Offset"));
      continue;
    }
    if (res && ![409, 423].includes(res.status) && res.status < 500) {
      if (res.status === 404) localStorage.removeItem(key);
      throw tusError(res);
    }
    // The connection dropped (or the upload is busy): retry from where the server is.
    failures += 1;
    if (failures > 8) throw Object.assign(new Error("the connection keeps failing; pick the file again to resume"), { code: "network-error" });
    status.textContent = "connection lost, retrying…";
    await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** failures, 8000)));
    const at = await tusOffset(url).catch(() => null);
    if (at !== null) offset = at;
    status.textContent = "";
  }
  localStorage.removeItem(key);
}

function uploadOne(file, overwrite = false, row = null) {
  const li = row ?? document.createElement("li");
  li.replaceChildren();
  const name = document.createElement("span");
  name.textContent = file.name;
  const bar = document.createElement("progress");
  bar.max = file.size || 1;
  bar.value = 0;
  const status = document.createElement("span");
  li.append(name, bar, status);
  if (!row) $("uploads").append(li);

  const done = () => {
    bar.value = bar.max;
    status.textContent = "uploaded";
    status.className = "ok";
    loadPage();
    refreshUsage();
  };
  const failed = (code, message) => {
    status.textContent = `${describeError(code, message)} (${code})`;
    status.className = "error";
    if (code === "already-exists") {
      const again = document.createElement("button");
      again.textContent = "Overwrite?";
      again.addEventListener("click", () => uploadOne(file, true, li));
      li.append(again);
    }
  };
  if (file.size > RESUMABLE_OVER) {
    uploadResumable(file, overwrite, bar, status).then(done, (e) => failed(e.code ?? "network-error", e.message));
    return;
  }

  const q = new URLSearchParams({ category: state.category, filename: file.name, overwrite: String(overwrite) });
  const xhr = new XMLHttpRequest();
  xhr.open("POST", `/v1/files?${q}`);
  xhr.setRequestHeader("Authorization", `Bearer ${state.token}`);
  if (file.type) xhr.setRequestHeader("Content-Type", file.type);
  xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) { bar.max = e.total; bar.value = e.loaded; } });
  xhr.addEventListener("load", () => {
    let data = {};
    try { data = JSON.parse(xhr.responseText); } catch {}
    if (xhr.status === 201) return done();
    failed(data?.error?.code ?? `HTTP ${xhr.status}`, data?.error?.message);
  });
  xhr.addEventListener("error", () => { status.textContent = "network error"; status.className = "error"; });
  xhr.send(file);
}

async function presign(f, expiresIn, download = false) {
  return api("POST", "/v1/presign", { key: f.key, expires_in: expiresIn, download });
}

async function preview(f) {
  try {
    const { url } = await presign(f, 600);
    const body = $("preview-body");
    body.replaceChildren();
    let el;
    const top = f.content_type.split("/")[0];
    if (top === "image") {
      el = document.createElement("img");
      el.alt = f.filename;
    } else if (top === "video" || top === "audio") {
      el = document.createElement(top);
      el.controls = true;
    } else {
      // PDF and plain text: the server sends them inline, sandboxed except for the PDF viewer.
      el = document.createElement("iframe");
      el.title = f.filename;
    }
    el.src = url;
    body.append(el);
    $("preview-title").textContent = f.filename;
    $("preview").hidden = false;
  } catch (e) {
    message(`${e.code}: ${e.message}`, "error");
  }
}

let sharing = null;
function share(f) {
  sharing = f;
  $("share-name").textContent = f.filename;
  $("share-link").value = "";
  $("share-status").textContent = "";
  $("share").hidden = false;
}

async function makeLink() {
  try {
    const { url, expires_at } = await presign(sharing, Number($("share-expiry").value));
    $("share-link").value = url;
    let copied = false;
    try { await navigator.clipboard.writeText(url); copied = true; } catch {}
    $("share-status").textContent = `${copied ? "Copied. " : ""}Valid until ${new Date(expires_at).toLocaleString()}`;
  } catch (e) {
    $("share-status").textContent = `${e.code}: ${e.message}`;
  }
}

async function download(f) {
  try {
    const { url } = await presign(f, 300, true);
    location.assign(url);
  } catch (e) {
    message(`${e.code}: ${e.message}`, "error");
  }
}

async function remove(f) {
  if (!confirm(`Delete ${f.filename}? This cannot be undone.`)) return;
  try {
    await api("DELETE", `/v1/files/${f.key.split("/").map(encodeURIComponent).join("/")}`);
    message(`Deleted ${f.filename}`, "ok");
    loadPage();
    refreshUsage();
  } catch (e) {
    message(`${e.code}: ${e.message}`, "error");
  }
}

function wire() {
  $("signin-button").addEventListener("click", () => {
    const token = $("token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem("coffer-token", token);
    start();
  });
  $("signout").addEventListener("click", () => { sessionStorage.removeItem("coffer-token"); showSignin(); });
  $("picker").addEventListener("change", (e) => { for (const f of e.target.files) uploadOne(f); e.target.value = ""; });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    for (const f of e.dataTransfer.files) uploadOne(f);
  });
  $("sort").addEventListener("change", resetPages);
  let typing;
  $("prefix").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(resetPages, 250); });
  $("next-page").addEventListener("click", () => { state.page++; loadPage(); });
  $("first-page").addEventListener("click", resetPages);
  $("preview-close").addEventListener("click", () => { $("preview").hidden = true; $("preview-body").replaceChildren(); });
  $("share-make").addEventListener("click", makeLink);
  $("share-close").addEventListener("click", () => { $("share").hidden = true; });
}

wire();
start();
