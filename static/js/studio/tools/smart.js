// Smart: prompts for a segmentation model, answered over the studio socket. A click marks a point
// inside the object, Ctrl+click (or Alt+click) a point outside it, a drag gives a box. Each prompt
// carries every point and the box of the object so far and refines the same object until Enter or
// Esc; the model's mask comes back already saved on the server (`prompt` message, `mask` reply; see
// annotation/studio/consumers.py), so the page takes it as stored and writes nothing itself.
//
// The object's prompts live in its `drawn` ({tool: "smart", model, points, box}), so undoing a
// prompt brings back the previous prompts with the previous mask, and the next click goes on from
// there. On a video the prompt is a `video_prompt` on the frame shown. The model is chosen in the
// #smart-model picker; the page data's `smart` (from annotation.studio.selectors.smart_tool) lists
// the models and the default.

import { maskPayload } from "../store.js";
import { clampToImage, roundPoint } from "./geometry.js";

function copyPrompts(prompts) {
  return { points: prompts.points.map((point) => [...point]), box: prompts.box ? [...prompts.box] : null };
}

export class SmartTool {
  constructor(studio, config) {
    this.name = "smart";
    this.studio = studio;
    this.config = config || { available: false, models: [], message: "No segmentation model is available." };
    this.cursor = "drawing";
    this.model = this.config.default ?? null;
    this.target = null; // key of the object the prompts refine; null: the next prompt makes a new one
    this.sending = null; // the prompts in flight
    this.next = null; // prompts made while others were in flight, sent when they are answered
    this.dragFrom = null;
    this.dragTo = null;
    this.picker = document.querySelector("#smart-model");
    this.picker?.addEventListener("change", () => {
      this.model = this.picker.value;
      this._modelHint();
    });
  }

  get available() {
    return Boolean(this.config.available) && this.studio.store.transport.kind === "socket";
  }

  get busy() {
    return Boolean(this.sending || this.next || this.dragFrom || this.target != null);
  }

  _unavailable() {
    if (!this.config.available) return this.config.message || "No segmentation model is available.";
    return "The smart tool needs the studio's live connection, which is down: draw by hand meanwhile.";
  }

  _modelChoice() {
    return (this.config.models || []).find((model) => model.key === this.model) || null;
  }

  _modelHint() {
    const model = this._modelChoice();
    if (model?.untrained) this.studio.hint(`${model.name} has random weights: its masks are noise.`);
    else if (model) this.studio.hint(`Smart tool: ${model.name}.`);
  }

  activate() {
    if (!this.available) this.studio.hint(this._unavailable());
    else if (this.config.message) this.studio.hint(this.config.message);
    else this._modelHint();
  }

  pointerDown(point, event) {
    if (!this.available) {
      this.studio.hint(this._unavailable());
      return true;
    }
    if (this.target == null && !this.studio.requireLabel()) return true;
    const { width, height } = this.studio.store;
    this.dragFrom = clampToImage(point, width, height);
    this.dragTo = this.dragFrom;
    this.negative = event.ctrlKey || event.metaKey || event.altKey;
    return true;
  }

  pointerMove(point) {
    if (!this.dragFrom) return;
    const { width, height } = this.studio.store;
    this.dragTo = clampToImage(point, width, height);
  }

  pointerUp() {
    if (!this.dragFrom) return;
    const [ax, ay] = roundPoint(this.dragFrom);
    const [bx, by] = roundPoint(this.dragTo);
    this.dragFrom = this.dragTo = null;
    const prompts = copyPrompts(this._current());
    const [dx, dy] = [Math.abs(bx - ax), Math.abs(by - ay)].map((d) => d * this.studio.viewer.scale);
    if (dx > 4 || dy > 4) prompts.box = [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
    else prompts.points.push([ax, ay, this.negative ? 0 : 1]);
    this.next = prompts;
    this._pump();
  }

  /** The prompts the next click adds to: those waiting, else those in flight, else the object's. */
  _current() {
    if (this.next) return this.next;
    if (this.sending) return this.sending;
    const object = this.target != null ? this.studio.store.get(this.target) : null;
    if (!object) {
      this.target = null;
      return { points: [], box: null };
    }
    const drawn = object.drawn?.tool === "smart" ? object.drawn : {};
    return { points: drawn.points || [], box: drawn.box || null };
  }

  async _pump() {
    if (this.sending || !this.next) return;
    const { studio } = this;
    const prompts = (this.sending = this.next);
    this.next = null;
    const key = this.target;
    try {
      if (key != null) await studio.store.settled(key); // a change of ours on its way: its version first
      const object = key != null ? studio.store.get(key) : null;
      if (key != null && !object) throw new Error("The object was deleted; click again to start a new one.");
      const message = {
        model: this.model,
        label_id: object ? null : studio.activeLabel,
        object_id: object ? object.id : null,
        version: object ? object.version : null,
        points: prompts.points,
        box: prompts.box,
      };
      // On a video the prompt is on the frame shown, to the video model (timeline.js).
      const reply = await (studio.video
        ? studio.video.prompt(message, object)
        : studio.store.transport.prompt(message));
      const before = object ? studio.store.snapshot(key) : null;
      const saved = studio.store.applySaved(object ? key : null, maskPayload(reply));
      studio.history.record(saved, before, studio.store.snapshot(saved), object ? "smart prompt" : "smart object");
      if (this.target === key) {
        this.target = saved;
        studio.select(saved);
      }
      if (reply.untrained) this._modelHint();
      else studio.hint(`Mask from ${reply.model}: score ${Number(reply.score).toFixed(2)}, ${Math.round(reply.timings?.total_ms ?? 0)} ms.`);
    } catch (error) {
      this.next = null; // what was clicked meanwhile built on the prompt that failed
      if (error.code === "conflict") this.target = null;
      studio.hint(error.message || "The model did not answer.");
    } finally {
      this.sending = null;
      studio.viewer.requestRender();
    }
    this._pump();
  }

  /** Enter or Esc ends the object being prompted (the next click starts a new one). */
  key(event) {
    if (this.target == null && !this.next) return false;
    if (event.key !== "Enter" && event.key !== "Escape") return false;
    this.cancel();
    this.studio.hint("Object finished: the next click starts a new one.");
    return true;
  }

  cancel() {
    this.next = null;
    this.target = null;
    this.dragFrom = this.dragTo = null;
    this.studio.viewer.requestRender();
  }

  draw(ctx, viewer) {
    const prompts = this.dragFrom ? null : this.next || this.sending || (this.target != null ? this._current() : null);
    for (const [x, y, positive] of prompts?.points || []) {
      const [dx, dy] = viewer.toDisplay(x, y);
      ctx.beginPath();
      ctx.arc(dx, dy, 5, 0, Math.PI * 2);
      ctx.fillStyle = positive ? "#2ca02c" : "#d62728";
      ctx.fill();
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
    const box = this.dragFrom ? [...this.dragFrom, ...this.dragTo] : prompts?.box;
    if (box) {
      const [x0, y0] = viewer.toDisplay(box[0], box[1]);
      const [x1, y1] = viewer.toDisplay(box[2], box[3]);
      ctx.setLineDash([5, 4]);
      ctx.strokeStyle = "#fff";
      ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
      ctx.setLineDash([]);
    }
  }
}
