// imagegen's web page. Plain JavaScript, no build step. Everything shown from the API goes through textContent
// (never innerHTML): prompts are user text. The token lives in localStorage and only ever travels in the
// Authorization header to this API; images are loaded from the short-lived URL that /content gives as JSON.
"use strict";

(() => {
  const BASE = document.querySelector('meta[name="imagegen-base"]').content;
  const TOKEN_KEY = "imagegen.token";
  const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
  const KNOWN_PROVIDERS = ["siliconflow", "huggingface", "fal", "replicate", "horde", "pollinations", "placeholder"];
  const POLL_MS = 1000;
  // A video takes minutes: its job is read less often.
  const VIDEO_POLL_MS = 2000;
  // The API takes an inline first frame as a data URI of at most this many characters (a larger one: a URL).
  const MAX_IMAGE_DATA_URI = 60000;
  const $ = (id) => document.getElementById(id);

  let token = localStorage.getItem(TOKEN_KEY) || "";
  let currentJob = null; // id of the job the "New image" panel follows
  let currentBatch = null;
  let currentVideo = null; // id of the video job the "New video" panel follows

  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || (body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.code = error.code || "";
      this.hint = error.hint || "";
    }
  }

  async function api(path, { method = "GET", body } = {}) {
    const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      if (response.status === 401) tokenRejected();
      throw new ApiError(response.status, data);
    }
    return data;
  }

  // DOM helpers: text only.
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function showError(id, error) {
    const target = $(id);
    if (!error) {
      target.textContent = "";
      return;
    }
    const hint = error.hint ? ` — ${error.hint}` : "";
    target.textContent = `${error.message}${hint}`;
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function when(value) {
    return value ? String(value).slice(0, 19).replace("T", " ") : "–";
  }

  // Images: the token goes in the header of the /content request, the <img> gets the presigned URL it answers.
  async function loadImage(img, jobId) {
    const answer = await api(`/v1/images/${encodeURIComponent(jobId)}/content`);
    img.src = answer.url;
  }

  // Videos: as images, the <video> gets the presigned URL that /content answers as JSON.
  async function loadVideo(video, jobId) {
    const answer = await api(`/v1/videos/${encodeURIComponent(jobId)}/content`);
    video.src = answer.url;
  }

  // Token

  function tokenRejected() {
    $("token-state").textContent = "token rejected (401): paste another";
    $("token-state").className = "error";
  }

  function setLocked(locked) {
    $("app").classList.toggle("locked", locked);
    $("locked-note").hidden = !locked;
    $("token-forget").hidden = locked;
    $("token-input").value = "";
    $("token-input").placeholder = locked ? "igk_…" : "token saved in this browser";
    $("token-state").className = "muted";
    $("token-state").textContent = locked ? "" : "using the saved token";
  }

  function start() {
    setLocked(!token);
    if (!token) return;
    refreshProviders();
    // After the gallery, not beside it: the page opens with no more requests in flight than before videos existed
    // (the local stack's API shares one resolver between concurrent requests; a deployed Lambda does not).
    refreshGallery().then(refreshVideos);
    refreshKeys();
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    if (!value) return;
    token = value;
    localStorage.setItem(TOKEN_KEY, token);
    start();
  });

  $("token-forget").addEventListener("click", () => {
    token = "";
    localStorage.removeItem(TOKEN_KEY);
    currentJob = null;
    currentBatch = null;
    currentVideo = null;
    for (const id of ["gallery", "videos", "batch-items", "job-attempts", "video-attempts"]) $(id).replaceChildren();
    $("video-job").hidden = true;
    $("video-player").removeAttribute("src");
    for (const id of ["keys-table", "providers-table"]) $(id).tBodies[0].replaceChildren();
    $("job").hidden = true;
    $("batch-summary").textContent = "";
    setLocked(true);
  });

  // New image

  function requestFields() {
    const [width, height] = $("size").value.split("x").map(Number);
    const fields = { width, height };
    const providers = [...document.querySelectorAll("#providers-choice input:checked")].map((box) => box.value);
    if (providers.length) fields.providers = providers;
    return fields;
  }

  $("create-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("create-error", null);
    $("create-submit").disabled = true;
    try {
      const job = await api("/v1/images", { method: "POST", body: { prompt: $("prompt").value, ...requestFields() } });
      followJob(job);
    } catch (error) {
      showError("create-error", error);
    } finally {
      $("create-submit").disabled = false;
    }
  });

  function renderJob(job) {
    $("job").hidden = false;
    $("job-id").textContent = job.id;
    const reached = { queued: 0, running: 1, succeeded: 2, failed: 2, canceled: 2 }[job.status] ?? 0;
    const steps = [...$("job-steps").children];
    steps.forEach((step, index) => {
      step.classList.toggle("reached", index <= reached);
      step.classList.toggle("bad", index === 2 && job.status !== "succeeded" && TERMINAL.has(job.status));
    });
    steps[2].textContent = TERMINAL.has(job.status) ? job.status : "succeeded";
    let status = job.status;
    if (job.provider) status += ` · provider ${job.provider}` + (job.model && job.model !== job.provider ? ` (${job.model})` : "");
    if (job.waiting) status += ` · waiting (${job.waiting.reason}) until ${when(job.waiting.until)}`;
    if (job.error) status += ` · ${job.error.message}` + (job.error.hint ? ` — ${job.error.hint}` : "");
    $("job-status").textContent = status;
    $("job-status").dataset.status = job.status;
    $("job-attempts").replaceChildren(...attemptItems(job));
  }

  function attemptItems(job) {
    return (job.attempts || []).map((attempt) => {
      const parts = [`${attempt.provider}${attempt.model ? "/" + attempt.model : ""}: ${attempt.outcome}`];
      if (attempt.error_class) parts.push(attempt.error_class);
      if (attempt.message) parts.push(attempt.message);
      if (attempt.latency_ms != null) parts.push(`${attempt.latency_ms} ms`);
      return el("li", { text: parts.join(" · ") });
    });
  }

  function jobLine(job) {
    let status = job.status;
    if (job.provider) status += ` · provider ${job.provider}` + (job.model && job.model !== job.provider ? ` (${job.model})` : "");
    if (job.video) status += ` · ${job.video.width || "?"}×${job.video.height || "?"}, ${job.video.duration_s.toFixed(1)} s`;
    if (job.waiting) status += ` · waiting (${job.waiting.reason}) until ${when(job.waiting.until)}`;
    if (job.error) status += ` · ${job.error.message}` + (job.error.hint ? ` — ${job.error.hint}` : "");
    for (const warning of job.status === "canceled" ? job.warnings || [] : []) status += ` · ${warning}`;
    return status;
  }

  async function followJob(job) {
    currentJob = job.id;
    $("job-image").hidden = true;
    $("job-image").removeAttribute("src");
    renderJob(job);
    while (!TERMINAL.has(job.status) && currentJob === job.id && token) {
      await sleep(POLL_MS);
      try {
        job = await api(`/v1/images/${encodeURIComponent(job.id)}`);
      } catch (error) {
        showError("create-error", error);
        if (error.status && error.status < 500 && error.status !== 429) return;
        continue;
      }
      if (currentJob === job.id) renderJob(job);
    }
    if (job.status === "succeeded" && currentJob === job.id) {
      $("job-image").alt = job.request.prompt;
      $("job-image").hidden = false;
      await loadImage($("job-image"), job.id).catch((error) => showError("create-error", error));
      refreshGallery();
    }
  }

  // Gallery

  async function refreshGallery() {
    showError("gallery-error", null);
    let page;
    try {
      page = await api("/v1/images?limit=24");
    } catch (error) {
      showError("gallery-error", error);
      return;
    }
    const done = page.items.filter((job) => job.status === "succeeded").slice(0, 12);
    const figures = done.map((job) => {
      const img = el("img", { alt: job.request.prompt, loading: "lazy", "data-job": job.id });
      const caption = el("figcaption", {}, el("span", { text: job.request.prompt }), el("small", { text: `${job.provider} · ${job.image.width}×${job.image.height}` }));
      loadImage(img, job.id).catch(() => img.classList.add("broken"));
      return el("figure", {}, img, caption);
    });
    $("gallery").replaceChildren(...figures);
    $("gallery-empty").hidden = figures.length > 0;
  }

  $("gallery-refresh").addEventListener("click", refreshGallery);

  // New video

  // The first frame as the API takes it: the URL typed, or the chosen file as a data URI (small ones only).
  function firstFrame() {
    const file = $("video-image-file").files[0];
    const url = $("video-image").value.trim();
    if (!file) return Promise.resolve(url || null);
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => {
        if (reader.result.length > MAX_IMAGE_DATA_URI) {
          reject(new Error(`${file.name} is too large to send inline (at most about 44 KB): give an https URL to it instead`));
        } else resolve(reader.result);
      };
      reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
      reader.readAsDataURL(file);
    });
  }

  $("video-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("video-error", null);
    $("video-submit").disabled = true;
    try {
      const body = { prompt: $("video-prompt").value, image_size: $("video-size").value };
      const image = await firstFrame();
      if (image) body.image = image;
      const job = await api("/v1/videos", { method: "POST", body });
      followVideo(job);
    } catch (error) {
      showError("video-error", error);
    } finally {
      $("video-submit").disabled = false;
    }
  });

  $("video-cancel").addEventListener("click", async () => {
    if (!currentVideo) return;
    try {
      renderVideoJob(await api(`/v1/videos/${encodeURIComponent(currentVideo)}/cancel`, { method: "POST" }));
    } catch (error) {
      showError("video-error", error);
    }
  });

  function renderVideoJob(job) {
    $("video-job").hidden = false;
    $("video-job-id").textContent = job.id;
    $("video-cancel").hidden = TERMINAL.has(job.status);
    $("video-status").textContent = jobLine(job);
    $("video-status").dataset.status = job.status;
    $("video-attempts").replaceChildren(...attemptItems(job));
  }

  async function followVideo(job) {
    currentVideo = job.id;
    $("video-player").hidden = true;
    $("video-player").removeAttribute("src");
    renderVideoJob(job);
    while (!TERMINAL.has(job.status) && currentVideo === job.id && token) {
      await sleep(VIDEO_POLL_MS);
      try {
        job = await api(`/v1/videos/${encodeURIComponent(job.id)}`);
      } catch (error) {
        showError("video-error", error);
        if (error.status && error.status < 500 && error.status !== 429) return;
        continue;
      }
      if (currentVideo === job.id) renderVideoJob(job);
    }
    if (job.status === "succeeded" && currentVideo === job.id) {
      $("video-player").hidden = false;
      await loadVideo($("video-player"), job.id).catch((error) => showError("video-error", error));
    }
    if (TERMINAL.has(job.status)) refreshVideos();
  }

  async function refreshVideos() {
    showError("videos-error", null);
    let page;
    try {
      page = await api("/v1/videos?limit=12");
    } catch (error) {
      showError("videos-error", error);
      return;
    }
    const figures = page.items.map((job) => {
      const caption = el("figcaption", {}, el("span", { text: job.request.prompt }), el("small", { text: jobLine(job) }));
      const figure = el("figure", { "data-job": job.id, "data-status": job.status });
      if (job.status === "succeeded") {
        const video = el("video", { controls: "", preload: "metadata", playsinline: "", "data-job": job.id });
        loadVideo(video, job.id).catch(() => video.classList.add("broken"));
        figure.append(video);
      }
      figure.append(caption);
      return figure;
    });
    $("videos").replaceChildren(...figures);
    $("videos-empty").hidden = figures.length > 0;
  }

  $("videos-refresh").addEventListener("click", refreshVideos);

  // Batch

  $("batch-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("batch-error", null);
    const prompts = $("batch-prompts").value.split("\n").map((line) => line.trim()).filter(Boolean);
    if (!prompts.length) {
      $("batch-error").textContent = "write at least one prompt";
      return;
    }
    $("batch-submit").disabled = true;
    try {
      const batch = await api("/v1/batches", { method: "POST", body: { defaults: requestFields(), items: prompts.map((prompt) => ({ prompt })) } });
      followBatch(batch, prompts);
    } catch (error) {
      showError("batch-error", error);
    } finally {
      $("batch-submit").disabled = false;
    }
  });

  function batchRows(prompts) {
    return prompts.map((prompt, index) => {
      const bar = el("progress", { max: "3", value: "0" });
      const state = el("span", { class: "state", text: "queued" });
      const detail = el("span", { class: "detail" });
      const thumb = el("img", { alt: "", hidden: "" });
      const row = el("li", {}, el("span", { class: "prompt", text: prompt }), bar, state, detail, thumb);
      row.dataset.index = String(index);
      return { row, bar, state, detail, thumb, loaded: false };
    });
  }

  async function followBatch(batch, prompts) {
    currentBatch = batch.id;
    const rows = batchRows(prompts);
    $("batch-items").replaceChildren(...rows.map((entry) => entry.row));
    for (;;) {
      $("batch-summary").textContent = `batch ${batch.id}: ${batch.status}, ${batch.progress} done`;
      $("batch-summary").dataset.status = batch.status;
      for (const item of batch.items) renderBatchItem(rows[item.index], item);
      if (batch.status !== "running" || currentBatch !== batch.id || !token) break;
      await sleep(POLL_MS);
      try {
        batch = await api(`/v1/batches/${encodeURIComponent(batch.id)}`);
      } catch (error) {
        showError("batch-error", error);
        if (error.status && error.status < 500 && error.status !== 429) return;
      }
    }
    if (batch.status !== "running") refreshGallery();
  }

  function renderBatchItem(entry, item) {
    if (!entry) return;
    entry.bar.value = { queued: 0, running: 1 }[item.status] ?? 3;
    entry.state.textContent = item.status;
    entry.row.dataset.status = item.status;
    entry.detail.textContent = item.error ? `${item.error.message}${item.error.hint ? " — " + item.error.hint : ""}` : item.provider || "";
    if (item.status === "succeeded" && !entry.loaded) {
      entry.loaded = true;
      entry.thumb.hidden = false;
      loadImage(entry.thumb, item.job_id).catch(() => entry.thumb.classList.add("broken"));
    }
  }

  // Keys

  // Leaves #keys-error alone: it may hold what a save or delete just answered.
  async function refreshKeys() {
    let page;
    try {
      page = await api("/v1/keys");
    } catch (error) {
      showError("keys-error", error);
      return;
    }
    const rows = page.items.map((key) => {
      const remove = el("button", { type: "button", class: "secondary small", text: "Delete" });
      remove.addEventListener("click", () => deleteKey(key.provider));
      const health = key.health ? key.health.status + (key.health.detail ? ` (${key.health.detail})` : "") : "not checked";
      return el(
        "tr",
        { "data-provider": key.provider },
        el("td", { text: key.provider }),
        el("td", { text: `…${key.last4}` }),
        el("td", { text: health }),
        el("td", { text: when(key.health && key.health.checked_at) }),
        el("td", {}, remove),
      );
    });
    $("keys-table").tBodies[0].replaceChildren(...rows);
    $("keys-empty").hidden = rows.length > 0;
  }

  async function deleteKey(provider) {
    showError("keys-error", null);
    try {
      await api(`/v1/keys/${encodeURIComponent(provider)}`, { method: "DELETE" });
      $("key-result").textContent = `${provider} key deleted`;
    } catch (error) {
      showError("keys-error", error);
    }
    refreshKeys();
    refreshProviders();
  }

  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("keys-error", null);
    $("key-result").textContent = "";
    const provider = $("key-provider").value;
    const value = $("key-value").value;
    if (!value.trim()) return;
    $("key-save").disabled = true;
    try {
      const stored = await api(`/v1/keys/${encodeURIComponent(provider)}`, { method: "PUT", body: { api_key: value } });
      const verdict = stored.health ? stored.health.status : "not checked";
      $("key-result").textContent = `${stored.provider} key …${stored.last4} saved; check: ${verdict}`;
      $("key-value").value = "";
    } catch (error) {
      showError("keys-error", error);
    } finally {
      $("key-save").disabled = false;
    }
    refreshKeys();
    refreshProviders();
  });

  // Providers

  async function refreshProviders() {
    showError("providers-error", null);
    let chain;
    try {
      chain = await api("/v1/providers");
    } catch (error) {
      showError("providers-error", error);
      return;
    }
    const rows = chain.items.map((link) =>
      el(
        "tr",
        { "data-provider": link.provider, class: link.would_try ? "ok" : "skipped" },
        el("td", { text: link.provider }),
        el("td", { text: link.would_try ? "yes" : "no" }),
        el("td", { text: link.key_source || "–" }),
        el("td", { text: link.health ? link.health.status : "–" }),
        el("td", { text: link.breaker ? link.breaker.state : "closed" }),
        el("td", { text: link.reason || "" }),
      ),
    );
    $("providers-table").tBodies[0].replaceChildren(...rows);
    $("providers-hint").textContent = chain.hint || "";
    renderProviderChoice(chain.items.map((link) => link.provider));
  }

  function renderProviderChoice(inChain) {
    const ticked = new Set([...document.querySelectorAll("#providers-choice input:checked")].map((box) => box.value));
    const names = [...new Set([...inChain, ...KNOWN_PROVIDERS])];
    const boxes = names.map((name) => {
      const box = el("input", { type: "checkbox", value: name, id: `provider-${name}` });
      box.checked = ticked.has(name);
      const label = el("label", { for: `provider-${name}`, text: name });
      return el("span", { class: "choice" }, box, label);
    });
    $("providers-choice").replaceChildren(el("legend", { text: "Providers, tried in this order (none ticked: the default chain)" }), ...boxes);
  }

  $("providers-refresh").addEventListener("click", refreshProviders);

  renderProviderChoice([]);
  start();
})();
