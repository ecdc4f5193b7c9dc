// Drag-and-drop upload: every dropped or chosen file is sent on its own to the media API (three at
// a time), with a progress bar per file and one for the whole batch. A refused file shows the
// server's reason and never stops the others. The gallery is reloaded when the batch ends.
(() => {
  const zone = document.getElementById("dropzone");
  if (!zone) return;
  const input = document.getElementById("upload-input");
  const status = document.getElementById("upload-status");
  const list = document.getElementById("upload-files");
  const overall = document.getElementById("upload-overall");
  const summary = document.getElementById("upload-summary");
  const csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];
  const PARALLEL = 3;
  let queue = [];
  let active = 0;
  let batch = { total: 0, bytes: 0, loaded: new Map(), stored: 0, refused: 0 };

  const refreshOverall = () => {
    let loaded = 0;
    batch.loaded.forEach((value) => { loaded += value; });
    overall.max = Math.max(batch.bytes, 1);
    overall.value = loaded;
    const finished = batch.stored + batch.refused;
    summary.textContent = `${finished} of ${batch.total} file${batch.total === 1 ? "" : "s"} · ${batch.stored} stored` +
      (batch.refused ? ` · ${batch.refused} refused` : "");
  };

  const row = (file) => {
    const li = document.createElement("li");
    li.className = "upload-file";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = Math.max(file.size, 1);
    bar.value = 0;
    bar.setAttribute("aria-label", `Upload of ${file.name}`);
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = "waiting";
    li.append(name, bar, note);
    list.append(li);
    return { li, bar, note };
  };

  const finish = (entry, ok, text) => {
    entry.ui.li.classList.add(ok ? "ok" : "refused");
    entry.ui.note.textContent = text;
    entry.ui.bar.value = entry.ui.bar.max;
    batch.loaded.set(entry.id, entry.file.size);
    if (ok) batch.stored += 1; else batch.refused += 1;
    refreshOverall();
    active -= 1;
    pump();
  };

  const send = (entry) => {
    active += 1;
    entry.ui.note.textContent = "uploading";
    const body = new FormData();
    body.append("file", entry.file, entry.file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", zone.dataset.uploadUrl);
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      entry.ui.bar.max = event.total;
      entry.ui.bar.value = event.loaded;
      batch.loaded.set(entry.id, Math.min(entry.file.size, event.loaded));
      refreshOverall();
    });
    xhr.addEventListener("load", () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (error) { data = {}; }
      if (xhr.status === 201) {
        finish(entry, true, "stored");
      } else {
        const refused = (data.refused && data.refused[0]) || {};
        finish(entry, false, refused.error || data.detail || `refused (HTTP ${xhr.status})`);
      }
    });
    xhr.addEventListener("error", () => finish(entry, false, "network error: try again"));
    xhr.send(body);
  };

  const pump = () => {
    while (active < PARALLEL && queue.length) send(queue.shift());
    if (!active && !queue.length && batch.total) {
      zone.dispatchEvent(new CustomEvent("upload:done", { bubbles: true, detail: { ...batch } }));
      const gallery = document.getElementById("gallery");
      if (gallery && window.htmx) {
        window.htmx.ajax("GET", zone.dataset.galleryUrl, { target: "#gallery", swap: "innerHTML" });
      }
    }
  };

  const add = (files) => {
    if (!files.length) return;
    status.hidden = false;
    if (!active && !queue.length) {
      batch = { total: 0, bytes: 0, loaded: new Map(), stored: 0, refused: 0 };
      list.replaceChildren();
    }
    for (const file of files) {
      const entry = { id: `${batch.total}`, file, ui: row(file) };
      batch.total += 1;
      batch.bytes += file.size;
      batch.loaded.set(entry.id, 0);
      queue.push(entry);
    }
    refreshOverall();
    pump();
  };

  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
  });
  input.addEventListener("change", () => { add([...input.files]); input.value = ""; });
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    add([...(event.dataTransfer ? event.dataTransfer.files : [])]);
  });
})();
