// Smart: prompts for a segmentation model. Left click marks a point inside the object, Ctrl+click a
// point outside it, a drag gives a box; each prompt goes to the model and its mask becomes (or
// replaces) the object being prompted.
//
// Where no model serves the studio the tool says so plainly and does nothing else. The hook for the
// inference work: the page data's `smart` ({available, message}, from
// annotation.studio.selectors.smart_tool) says whether a model serves this project, and the prompts
// ({points: [[x, y, 1 | 0], ...], box: [x0, y0, x1, y1] | null}, image pixels) go through the
// transport's segment(), a `segment` message on the studio socket, whose reply carries the mask as
// RLE ({"rle": {"size": [h, w], "counts": "..."}}).

import { countsFromString, area } from "../rle.js";
import { clampToImage, roundPoint } from "./geometry.js";

export class SmartTool {
  constructor(studio, config) {
    this.name = "smart";
    this.studio = studio;
    this.config = config || { available: false, message: "No segmentation model is available." };
    this.cursor = "drawing";
    this.prompts = null; // {points: [[x, y, 1|0]], box: [x0, y0, x1, y1] | null}
    this.dragFrom = null;
    this.dragTo = null;
    this.target = null; // key of the object the prompts make
  }

  get available() {
    return Boolean(this.config.available) && this.studio.store.transport.kind === "socket";
  }

  get busy() {
    return Boolean(this.prompts || this.dragFrom);
  }

  activate() {
    if (!this.available) this.studio.hint(this.config.message || "No segmentation model is available.");
  }

  pointerDown(point, event) {
    if (!this.available) {
      this.studio.hint(this.config.message || "No segmentation model is available.");
      return true;
    }
    if (!this.studio.requireLabel()) return true;
    const { width, height } = this.studio.store;
    this.dragFrom = clampToImage(point, width, height);
    this.dragTo = this.dragFrom;
    this.negative = event.ctrlKey || event.metaKey;
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
    this.prompts = this.prompts || { points: [], box: null };
    const [dx, dy] = [Math.abs(bx - ax), Math.abs(by - ay)].map((d) => d * this.studio.viewer.scale);
    if (dx > 4 || dy > 4) this.prompts.box = [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
    else this.prompts.points.push([ax, ay, this.negative ? 0 : 1]);
    this._send();
  }

  async _send() {
    const { studio } = this;
    try {
      const result = await studio.store.transport.segment({ prompts: this.prompts, label: studio.activeLabel });
      const rle = result?.rle;
      if (!rle || area(countsFromString(rle.counts)) === 0) {
        studio.hint("The model found nothing there: add a point or draw a box.");
        return;
      }
      const drawn = { tool: "smart", prompts: this.prompts };
      if (this.target != null && studio.store.get(this.target)) {
        studio.editObject(this.target, { rle, drawn }, "smart prompt");
      } else {
        this.target = studio.createObject({ label: studio.activeLabel, rle, drawn }, "smart object");
        studio.select(this.target);
      }
    } catch (error) {
      studio.hint(error.message || "The model did not answer.");
    }
  }

  /** Enter or Esc ends the object being prompted (the next click starts a new one). */
  key(event) {
    if (!this.prompts || (event.key !== "Enter" && event.key !== "Escape")) return false;
    this.cancel();
    return true;
  }

  cancel() {
    this.prompts = null;
    this.target = null;
    this.dragFrom = this.dragTo = null;
  }

  draw(ctx, viewer) {
    for (const [x, y, positive] of this.prompts?.points || []) {
      const [dx, dy] = viewer.toDisplay(x, y);
      ctx.beginPath();
      ctx.arc(dx, dy, 5, 0, Math.PI * 2);
      ctx.fillStyle = positive ? "#2ca02c" : "#d62728";
      ctx.fill();
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
    const box = this.dragFrom ? [...this.dragFrom, ...this.dragTo] : this.prompts?.box;
    if (box) {
      const [x0, y0] = viewer.toDisplay(box[0], box[1]);
      const [x1, y1] = viewer.toDisplay(box[2], box[3]);
      ctx.setLineDash([5, 4]);
      ctx.strokeStyle = "#fff";
      ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
    }
  }
}
