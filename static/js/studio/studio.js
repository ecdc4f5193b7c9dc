// The studio page's module: wires the viewer, the masks, the tools, the store and its transport,
// undo / redo, the side panels and the keyboard together. The page's data comes from the
// json_script element #studio-data (the CSP allows no inline script). On a video item the
// timeline player (timeline.js) picks the frame shown and edited.
//
// `ready` resolves to the running Studio once the item's annotations are loaded.

import { History } from "./history.js";
import { MaskLayer } from "./masks.js";
import { RestTransport, Store, connectTransport } from "./store.js";
import { VideoTimeline } from "./timeline.js";
import { BoxTool } from "./tools/box.js";
import { BRUSH_SIZES, BrushTool } from "./tools/brush.js";
import { PolygonTool } from "./tools/polygon.js";
import { SelectTool } from "./tools/select.js";
import { SmartTool } from "./tools/smart.js";
import { VertexEditor } from "./tools/vertices.js";
import { Viewer } from "./viewer.js";

const DOUBLE_KEY_MS = 400;
const TOOL_KEYS = { v: "select", p: "polygon", b: "brush", e: "eraser", r: "box", s: "smart" };

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

export class Studio {
  constructor(data, root) {
    this.data = data;
    this.root = root;
    this.labels = new Map(data.labels.map((label) => [label.id, label]));
    this.drawable = data.labels.filter((label) => label.kind !== "classification");
    this.activeLabel = this.drawable[0]?.id ?? null;
    this.selected = null;
    this.brushSize = 12;
    this.csrfToken = $("#item-form input[name=csrfmiddlewaretoken]")?.value || "";
    this.viewer = new Viewer($("#studio-stage"), $("#studio-canvas"), { width: data.width, height: data.height });
    this.history = null;
    this.store = null;
    this.masks = null;
    this.tool = null;
    this.tools = {};
    this.pendingNext = null;
    this.conflictKey = null;
    this.leaving = false;
    this.video = data.video ? new VideoTimeline(this, data.video, $("#timeline", root)) : null;
  }

  async start() {
    if (this.video) this.video.begin();
    else this._loadImage();
    this.rest = new RestTransport({ url: this.data.annotationsUrl, csrfToken: this.csrfToken });
    const transport = await connectTransport({ socketPath: this.data.socketPath, rest: this.rest });
    const frame = this.video ? this.video.frame : null;
    this.store = new Store({ transport, rest: this.rest, height: this.data.height, width: this.data.width, frame });
    this.history = new History(this.store);
    this.masks = new MaskLayer(this.store, (id) => this.colourOf(id));
    this.viewer.layers.push(this.masks);
    this.video?.attach(this.store);
    this.viewer.overlays.push({ draw: (ctx, viewer) => this._drawOverlay(ctx, viewer) });
    const vertices = new VertexEditor(this);
    this.tools = {
      select: new SelectTool(this, vertices),
      polygon: new PolygonTool(this, vertices),
      brush: new BrushTool(this, "paint"),
      eraser: new BrushTool(this, "erase"),
      box: new BoxTool(this),
      smart: new SmartTool(this, this.data.smart),
    };
    this._wirePanels();
    this._wireKeys();
    this._wireTransport(transport);
    this.setTool("select");
    this.setLabel(this.activeLabel, { relabel: false });
    this.store.addEventListener("change", () => this._refresh());
    this.store.addEventListener("status", () => this._status());
    this.store.addEventListener("conflict", () => this._showConflict());
    this.store.addEventListener("forget", (event) => {
      this.masks.forget(event.detail);
      if (this.selected === event.detail) this.select(null);
    });
    this.history.addEventListener("change", () => this._historyButtons());
    try {
      await this.store.load();
      // The first frame drawn from here on has every mask on it (bench/studio_canvas.py times it).
      this.viewer.addEventListener("rendered", () => performance.mark("studio:masks-painted"), { once: true });
    } catch (error) {
      this._setStatus(`The annotations could not be loaded: ${error.message}`, true);
    }
    this._refresh();
    this._status();
    return this;
  }

  // --- the context the tools use ------------------------------------------------------------------

  colourOf(labelId) {
    return this.labels.get(labelId)?.color || "#1f77b4";
  }

  hint(text) {
    $("#studio-hint").textContent = text || "";
  }

  requireLabel() {
    if (this.activeLabel != null) return true;
    this.hint("Choose a label first (1…9).");
    return false;
  }

  /** Select an object (null: none). On a video the selected object's track is the one new objects
   * join; `keepTrack` keeps it when the timeline selects on another frame. */
  select(key, { keepTrack = false } = {}) {
    this.selected = this.store.get(key) ? key : null;
    this.masks.selected = this.selected;
    this.video?.selected(this.store.get(this.selected), keepTrack);
    this._refresh();
  }

  /** Add an object, remembered for undo; returns its key. On a video it goes on the frame shown. */
  createObject(fields, what) {
    if (this.video) fields = this.video.placeNew(fields);
    const label = this.labels.get(fields.label);
    const answers = {};
    for (const question of label?.questions || []) if (question.default) answers[question.id] = question.default;
    const key = this.store.create({ answers, ...fields });
    this.history.record(key, null, this.store.snapshot(key), what);
    this.select(key);
    return key;
  }

  editObject(key, changes, what) {
    const before = this.store.snapshot(key);
    if (!before) return;
    this.store.change(key, changes);
    this.history.record(key, before, this.store.snapshot(key), what);
  }

  deleteObject(key, what = "delete an object") {
    const before = this.store.snapshot(key);
    if (!before) return;
    this.store.remove(key);
    this.history.record(key, before, null, what);
    if (this.selected === key) this.select(null);
  }

  // --- tools, labels, objects ---------------------------------------------------------------------

  setTool(name) {
    const tool = this.tools[name];
    if (!tool) return;
    this.tool?.cancel?.();
    this.tool = tool;
    this.viewer.tool = tool;
    for (const button of $$(".tool[data-tool]", this.root)) {
      button.setAttribute("aria-pressed", String(button.dataset.tool === name));
    }
    const stage = $("#studio-stage");
    stage.classList.toggle("drawing", tool.cursor === "drawing");
    stage.dataset.tool = name;
    this.hint("");
    tool.activate?.();
    this.viewer.requestRender();
  }

  setLabel(id, { relabel = true } = {}) {
    const label = this.labels.get(id);
    if (!label || label.kind === "classification") return;
    this.activeLabel = id;
    for (const button of $$(".label-pick", this.root)) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.label) === id));
    }
    const object = this.store?.get(this.selected);
    if (relabel && object && object.label !== id) this.relabel(object.key, id);
    this._panels();
    this.viewer.requestRender();
  }

  relabel(key, labelId) {
    const label = this.labels.get(labelId);
    if (!label) return;
    // Answers belong to the old label's questions: the new label starts from its own defaults.
    const answers = {};
    for (const question of label.questions) if (question.default) answers[question.id] = question.default;
    this.editObject(key, { label: labelId, answers }, "relabel");
  }

  answer(questionId, choice) {
    const object = this.store.get(this.selected);
    if (!object) return;
    this.editObject(object.key, { answers: { ...object.answers, [questionId]: choice } }, "answer");
  }

  bringForward(key) {
    const object = this.store.get(key);
    if (object && object.z_order <= this.store.topZ()) this.editObject(key, { z_order: this.store.topZ() + 1 }, "bring forward");
  }

  sendBackward(key) {
    const object = this.store.get(key);
    if (object) this.editObject(key, { z_order: this.store.bottomZ() - 1 }, "send back");
  }

  /** Take a pre-annotation as it is (it stops being proposed; fixing or deleting it works as for any object). */
  async accept(key) {
    const object = this.store.get(key);
    if (!object?.proposed) {
      this.hint("Only a proposed object (a model's pre-annotation) is accepted; this one is already yours.");
      return;
    }
    await this.store.accept(key);
    this.hint(this.store.get(key)?.proposed ? "" : "Accepted.");
  }

  async acceptAll() {
    try {
      const count = await this.store.acceptAll();
      this.hint(`Accepted ${count} proposed object${count === 1 ? "" : "s"}.`);
    } catch (error) {
      this.hint(error.message || "The proposed objects could not be accepted.");
    }
  }

  toggleHideAll() {
    this.masks.hideAll = !this.masks.hideAll;
    $("#hide-all").setAttribute("aria-pressed", String(this.masks.hideAll));
    this.viewer.requestRender();
  }

  undo() {
    const step = this.history.undo();
    this.hint(step ? `Undone: ${step.what}.` : "Nothing to undo.");
    if (step) this.video?.reveal(step.key);
    if (step && this.store.get(step.key)) this.select(step.key);
  }

  redo() {
    const step = this.history.redo();
    this.hint(step ? `Redone: ${step.what}.` : "Nothing to redo.");
    if (step) this.video?.reveal(step.key);
    if (step && this.store.get(step.key)) this.select(step.key);
  }

  setBrushSize(direction) {
    const index = BRUSH_SIZES.findIndex((size) => size >= this.brushSize);
    const next = Math.min(BRUSH_SIZES.length - 1, Math.max(0, (index < 0 ? BRUSH_SIZES.length - 1 : index) + direction));
    this.brushSize = BRUSH_SIZES[next];
    $("#brush-size").textContent = String(this.brushSize);
    this.viewer.requestRender();
  }

  // --- leaving the item ---------------------------------------------------------------------------

  /** Wait for every change to be written; true when nothing was refused (or the person leaves anyway). */
  async flushed() {
    this._setStatus("Saving…");
    await this.store.whenIdle();
    const problems = this.store.problems();
    if (!problems.length) return true;
    return window.confirm(`${problems.length} change(s) could not be saved. Leave this item anyway?`);
  }

  async go(linkId) {
    const link = document.getElementById(linkId);
    if (!link || this.leaving) return;
    if (!(await this.flushed())) return;
    this.leaving = true;
    window.location.assign(link.href);
  }

  async saveAndNext() {
    if (this.leaving) return;
    if (!(await this.flushed())) return;
    this.leaving = true;
    $("#item-form").requestSubmit();
  }

  // --- drawing the overlay ------------------------------------------------------------------------

  _drawOverlay(ctx, viewer) {
    // Pre-annotations: a dashed box and a keypoint at the centroid, in the label's colour; on a
    // video every object of the frame has its box (solid) and centroid, as its track is followed.
    for (const proposed of this.store.proposed()) this._drawBoxAndCentre(ctx, viewer, proposed, [3, 3]);
    const tracked = this.video ? this.store.ordered().filter((object) => !object.proposed) : [];
    for (const object of tracked) this._drawBoxAndCentre(ctx, viewer, object, []);
    const object = this.store.get(this.selected);
    if (object && this.masks.visible(object)) {
      const box = this.masks.boxOf(object);
      if (box) {
        const [x0, y0] = viewer.toDisplay(box[0], box[1]);
        const [x1, y1] = viewer.toDisplay(box[0] + box[2], box[1] + box[3]);
        ctx.setLineDash([5, 4]);
        ctx.lineWidth = 1;
        ctx.strokeStyle = "#ffffff";
        ctx.strokeRect(x0 - 2, y0 - 2, x1 - x0 + 4, y1 - y0 + 4);
        ctx.setLineDash([]);
      }
    }
    this.tool?.draw?.(ctx, viewer);
  }

  _drawBoxAndCentre(ctx, viewer, object, dash) {
    if (!this.masks.visible(object)) return;
    const box = this.masks.boxOf(object);
    const centre = this.masks.centroidOf(object);
    if (!box || !centre) return;
    const colour = this.colourOf(object.label);
    const [x0, y0] = viewer.toDisplay(box[0], box[1]);
    const [x1, y1] = viewer.toDisplay(box[0] + box[2], box[1] + box[3]);
    ctx.setLineDash(dash);
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = colour;
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    ctx.setLineDash([]);
    const [cx, cy] = viewer.toDisplay(centre[0], centre[1]);
    ctx.beginPath();
    ctx.arc(cx, cy, 4, 0, Math.PI * 2);
    ctx.fillStyle = colour;
    ctx.fill();
    ctx.strokeStyle = "#ffffff";
    ctx.stroke();
  }

  // --- panels ---------------------------------------------------------------------------------------

  _wirePanels() {
    const root = this.root;
    for (const el of $$("[data-color]", root)) el.style.backgroundColor = el.dataset.color;
    // Buttons clicked with the mouse give the focus back, so the keys keep working.
    root.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (button && event.detail > 0 && !button.closest("dialog, form")) button.blur();
    });
    for (const button of $$(".tool[data-tool]", root)) {
      button.addEventListener("click", () => this.setTool(button.dataset.tool));
    }
    for (const button of $$(".label-pick", root)) {
      button.addEventListener("click", () => this.setLabel(Number(button.dataset.label)));
    }
    $("#zoom-in").addEventListener("click", () => this.viewer.zoomIn());
    $("#zoom-out").addEventListener("click", () => this.viewer.zoomOut());
    $("#zoom-fit").addEventListener("click", () => this.viewer.fit());
    $("#undo").addEventListener("click", () => this.undo());
    $("#redo").addEventListener("click", () => this.redo());
    $("#hide-all").addEventListener("click", () => this.toggleHideAll());
    $("#accept-all").addEventListener("click", () => this.acceptAll());
    $("#help-open").addEventListener("click", () => $("#studio-help").showModal());
    const opacity = $("#mask-opacity");
    opacity.addEventListener("input", () => {
      this.masks.opacity = Number(opacity.value) / 100;
      this.viewer.requestRender();
    });
    this.masks.opacity = Number(opacity.value) / 100;
    const zoomLevel = $("#zoom-level");
    this.viewer.addEventListener("view", () => {
      zoomLevel.textContent = `${Math.round(this.viewer.scale * 100)} %`;
    });
    zoomLevel.textContent = `${Math.round(this.viewer.scale * 100)} %`;
    // Object list: delegated, rows come and go.
    const list = $("#object-list");
    list.addEventListener("click", (event) => {
      const row = event.target.closest(".object-row");
      if (!row) return;
      const key = Number(row.dataset.key);
      const action = event.target.closest("[data-action]")?.dataset.action;
      if (action === "hide") this.store.setHidden(key, !this.store.get(key)?.hidden);
      else if (action === "forward") this.bringForward(key);
      else if (action === "backward") this.sendBackward(key);
      else if (action === "delete") this.deleteObject(key);
      else if (action === "accept") this.accept(key);
      else if (event.target.closest(".object-pick")) this.select(this.selected === key ? null : key);
    });
    list.addEventListener("change", (event) => {
      const select = event.target.closest(".object-label");
      if (!select) return;
      this.relabel(Number(select.closest(".object-row").dataset.key), Number(select.value));
    });
    $("#object-questions").addEventListener("change", (event) => {
      const input = event.target;
      if (input.matches("input[type=radio][data-question]")) this.answer(input.dataset.question, input.value);
    });
    $("#item-form").addEventListener("submit", (event) => {
      // A click on "Save and next" waits for the annotations to be written first.
      if (this.leaving) return;
      event.preventDefault();
      this.saveAndNext();
    });
    for (const button of $$("[data-conflict]", root)) {
      button.addEventListener("click", () => this._resolveConflict(button.dataset.conflict));
    }
    $$("#nav-previous, #nav-next, #nav-next-open").forEach((link) =>
      link.addEventListener("click", (event) => {
        if (this.leaving || event.ctrlKey || event.metaKey || event.shiftKey) return;
        event.preventDefault();
        this.go(link.id);
      }),
    );
    window.addEventListener("beforeunload", (event) => {
      if (this.leaving || !this.store.pendingCount()) return;
      event.preventDefault();
      event.returnValue = "";
    });
  }

  _historyButtons() {
    $("#undo").disabled = !this.history.canUndo;
    $("#redo").disabled = !this.history.canRedo;
  }

  _refresh() {
    this._objectList();
    this._panels();
    this._historyButtons();
    this.viewer.requestRender();
  }

  _objectList() {
    const list = $("#object-list");
    const template = $("#object-row");
    const objects = [...this.store.ordered()].reverse(); // top first, as layers are listed
    const rows = new Map($$(".object-row", list).map((row) => [Number(row.dataset.key), row]));
    let previous = null;
    for (const object of objects) {
      let row = rows.get(object.key);
      rows.delete(object.key);
      if (!row) {
        row = template.content.firstElementChild.cloneNode(true);
        row.dataset.key = String(object.key);
      }
      const label = this.labels.get(object.label);
      const track = object.track != null ? ` · track ${object.track}` : "";
      const name = `${label?.name || "?"} ${object.id != null ? `#${object.id}` : "(new)"}${track}`;
      row.querySelector(".object-name").textContent = name;
      row.classList.toggle("proposed", Boolean(object.proposed));
      row.querySelector("[data-action=accept]").hidden = !object.proposed;
      row.querySelector(".object-source").textContent = object.proposed ? `proposed by ${object.source}` : "";
      row.querySelector(".swatch").style.backgroundColor = this.colourOf(object.label);
      const pick = row.querySelector(".object-pick");
      pick.setAttribute("aria-pressed", String(object.key === this.selected));
      pick.title = `Select ${name}`;
      row.querySelector(".object-label").value = String(object.label);
      const hide = row.querySelector("[data-action=hide]");
      hide.setAttribute("aria-pressed", String(object.hidden));
      hide.textContent = object.hidden ? "Show" : "Hide";
      row.classList.toggle("selected", object.key === this.selected);
      row.classList.toggle("hidden-object", object.hidden);
      row.dataset.state = object.state;
      row.dataset.id = object.id != null ? String(object.id) : "";
      const state = row.querySelector(".object-state");
      const words = { unsaved: "saving…", error: object.message, conflict: "changed by someone else" };
      state.textContent = words[object.state] || "";
      state.classList.toggle("error", object.state === "error" || object.state === "conflict");
      const place = previous ? previous.nextElementSibling : list.firstElementChild;
      if (place !== row) list.insertBefore(row, place);
      previous = row;
    }
    for (const row of rows.values()) row.remove();
    $("#object-count").textContent = String(objects.length);
    const proposed = this.store.proposed().length;
    const acceptAll = $("#accept-all");
    acceptAll.hidden = proposed === 0;
    acceptAll.textContent = `Accept all ${proposed} proposed`;
    $("#object-empty").hidden = objects.length > 0;
  }

  _panels() {
    const object = this.store?.get(this.selected);
    const shownLabel = object ? object.label : this.activeLabel;
    for (const notes of $$("[data-guidelines]", this.root)) notes.hidden = Number(notes.dataset.guidelines) !== shownLabel;
    const panel = $("#object-questions");
    panel.hidden = !object;
    let any = false;
    for (const group of $$("[data-object-questions]", panel)) {
      const mine = object && Number(group.dataset.objectQuestions) === object.label;
      group.hidden = !mine;
      if (!mine) continue;
      any = true;
      for (const input of $$("input[type=radio]", group)) {
        input.checked = object.answers?.[input.dataset.question] === input.value;
      }
    }
    $("#object-no-questions").hidden = any;
  }

  _setStatus(text, error = false) {
    const status = $("#studio-status");
    status.textContent = text;
    status.classList.toggle("error", error);
  }

  _status() {
    if (!this.store) return;
    const pending = this.store.pendingCount();
    const problems = this.store.problems();
    if (problems.length) this._setStatus(`${problems.length} change(s) not saved: ${problems[0].message}`, true);
    else if (pending) this._setStatus("Saving…");
    else if ([...this.store.objects.values()].some((o) => o.state === "unsaved")) this._setStatus("Not saved yet: trying again…", true);
    else this._setStatus("All changes saved");
    const badge = $("#studio-transport");
    const live = this.store.transport.kind === "socket";
    badge.textContent = live ? "Live" : "Saved over HTTP";
    badge.title = live
      ? "Changes are saved over the live connection; others' changes appear as they happen."
      : "Changes are saved over HTTP; reload to see others' changes.";
    badge.classList.toggle("live", live);
  }

  _showConflict() {
    const conflicted = this.store.problems().find((o) => o.state === "conflict");
    $("#studio-conflict").hidden = !conflicted;
    if (conflicted) {
      this.conflictKey = conflicted.key;
      $("#studio-conflict-text").textContent =
        `${this.labels.get(conflicted.label)?.name || "An object"}: ${conflicted.message || "someone else changed it."}`;
    }
  }

  _resolveConflict(how) {
    if (this.conflictKey == null) return;
    this.store.resolve(this.conflictKey, how);
    this.conflictKey = null;
    this._showConflict();
  }

  _wireTransport(transport) {
    this.video?.listen(transport);
    transport.onClose(() => {
      // The socket dropped: go on over REST, and try the socket again later.
      this.store.setTransport(this.rest);
      setTimeout(() => this._reconnect(), 5000);
    });
  }

  async _reconnect() {
    if (this.leaving) return;
    const transport = await connectTransport({ socketPath: this.data.socketPath, rest: this.rest });
    if (transport.kind !== "socket") {
      setTimeout(() => this._reconnect(), 15000);
      return;
    }
    this.store.setTransport(transport);
    this._wireTransport(transport);
    // What others changed while the socket was down.
    try {
      this.store.sync(await transport.list());
    } catch {
      /* the next change shows any problem */
    }
  }

  _loadImage() {
    const image = new Image();
    image.decoding = "async";
    image.addEventListener("load", () => this.viewer.setImage(image));
    image.addEventListener("error", () => this._setStatus("The image could not be loaded.", true));
    image.src = this.data.imageUrl;
  }

  // --- keys -----------------------------------------------------------------------------------------

  _wireKeys() {
    document.addEventListener("keydown", (event) => this._key(event));
  }

  _key(event) {
    const target = event.target;
    const dialog = $("#studio-help");
    if (dialog.open) return; // the dialog handles its own keys (Esc closes it)
    const choosing = target instanceof HTMLElement && target.matches("input[type=radio], input[type=checkbox]");
    const typing =
      target instanceof HTMLElement &&
      target.matches("textarea, select, [contenteditable], input:not([type=radio]):not([type=checkbox])");
    if (typing) return;
    const key = event.key;
    const ctrl = event.ctrlKey || event.metaKey;
    // A tool that is drawing gets the first word (Enter closes a polygon, Esc drops it, …).
    if (this.tool?.busy && this.tool.key?.(event)) {
      event.preventDefault();
      this.viewer.requestRender();
      return;
    }
    if (ctrl && !event.altKey) {
      const lower = key.toLowerCase();
      if (lower === "z" && !event.shiftKey) this.undo();
      else if (lower === "y" || (lower === "z" && event.shiftKey)) this.redo();
      else return;
      event.preventDefault();
      return;
    }
    if (event.altKey || ctrl) return;
    // Arrow keys move between radio buttons; links and buttons keep Enter and Space.
    if (choosing && key.startsWith("Arrow")) return;
    if (key === "Enter" && target instanceof HTMLElement && target.closest("a[href], button, summary")) return;
    const lower = key.length === 1 ? key.toLowerCase() : key;
    let handled = true;
    if (this.video?.key(event)) handled = true; // ← → (Shift: by 10), Home, End, M on a video
    else if (/^[1-9]$/.test(key)) {
      const label = this.data.labels[Number(key) - 1];
      if (label) this.setLabel(label.id);
    } else if (TOOL_KEYS[lower]) this.setTool(TOOL_KEYS[lower]);
    else if (key === "ArrowLeft" || key === "<") this.go("nav-previous");
    else if (key === "ArrowRight") this.go("nav-next");
    else if (key === ">") {
      if (this.pendingNext) {
        clearTimeout(this.pendingNext);
        this.pendingNext = null;
        this.go("nav-next-open");
      } else {
        this.pendingNext = setTimeout(() => {
          this.pendingNext = null;
          this.go("nav-next");
        }, DOUBLE_KEY_MS);
      }
    } else if (lower === "u") this.go("nav-next-open");
    else if (key === "Enter") this.saveAndNext();
    else if (key === "Delete" || key === "Backspace") {
      if (this.selected != null) this.deleteObject(this.selected);
    } else if (key === "Escape") {
      if (this.tool?.busy) this.tool.cancel();
      else this.select(null);
      this.hint("");
    } else if (lower === "h") this.toggleHideAll();
    else if (lower === "a") {
      if (this.selected != null) this.accept(this.selected);
    }
    else if (key === "?") dialog.showModal();
    else if (key === "+" || key === "=") this.viewer.zoomIn();
    else if (key === "-" || key === "_") this.viewer.zoomOut();
    else if (lower === "f" || key === "0") this.viewer.fit();
    else if (key === "[") this.setBrushSize(-1);
    else if (key === "]") this.setBrushSize(1);
    else handled = false;
    if (handled) {
      event.preventDefault();
      this.viewer.requestRender();
    }
  }
}

async function start() {
  const root = document.getElementById("studio");
  const script = document.getElementById("studio-data");
  if (!root || !script) return null;
  const studio = new Studio(JSON.parse(script.textContent), root);
  return studio.start();
}

export const ready = start();
