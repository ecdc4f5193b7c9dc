// Brush and eraser: a stroke that starts on the selected object (or any, with Shift held) paints onto
// it, one that starts elsewhere makes a new object of the chosen label; the eraser erases from the
// selected object (or the one under the first touch). `[` and `]` change the size. A stroke is
// kept in `drawn.strokes` so the mask can be made again from what was drawn.

import { applyStroke, area, emptyCounts, fromCounts } from "../rle.js";
import { round, roundPoint } from "./geometry.js";

export const BRUSH_SIZES = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256];

export class BrushTool {
  constructor(studio, mode) {
    this.name = mode === "erase" ? "eraser" : "brush";
    this.mode = mode;
    this.studio = studio;
    this.points = null;
    this.target = null;
    this.cursor = "drawing";
  }

  get busy() {
    return Boolean(this.points);
  }

  pointerDown(point, event) {
    const { studio } = this;
    let target = studio.store.get(studio.selected);
    if (target && !studio.masks.visible(target)) target = null;
    if (this.mode === "erase") {
      target = target || studio.masks.hit(...point);
      if (!target) {
        studio.hint("Select the object to erase from (or start on it).");
        return true;
      }
    } else {
      // A stroke that starts on the selected object (or any stroke with Shift held) adds to it;
      // one that starts elsewhere makes a new object.
      if (target && !event.shiftKey && !studio.masks.contains(target, ...point)) target = null;
      if (!target && !studio.requireLabel()) return true;
    }
    this.target = target ? target.key : null;
    this.points = [roundPoint(point)];
    return true;
  }

  pointerMove(point) {
    if (!this.points) return;
    const last = this.points[this.points.length - 1];
    const step = Math.max(0.5, this.studio.brushSize / 4);
    if (Math.hypot(point[0] - last[0], point[1] - last[1]) >= step) this.points.push(roundPoint(point));
  }

  pointerUp(point) {
    if (!this.points) return;
    this.pointerMove(point);
    const stroke = { mode: this.mode, size: round(this.studio.brushSize), points: this.points };
    const targetKey = this.target;
    this.points = null;
    this.target = null;
    const { studio } = this;
    const { height, width } = studio.store;
    const object = targetKey != null ? studio.store.get(targetKey) : null;
    if (object) {
      const counts = applyStroke(object.counts, stroke, height, width);
      if (counts.join() === Array.from(object.counts).join()) return; // the stroke changed nothing
      const drawn = { ...object.drawn, strokes: [...(object.drawn?.strokes || []), stroke] };
      if (area(counts) === 0) {
        studio.deleteObject(object.key, "erase an object");
        return;
      }
      studio.editObject(object.key, { rle: fromCounts(counts, height, width), drawn }, `${this.name} stroke`);
      return;
    }
    if (this.mode === "erase") return;
    const counts = applyStroke(emptyCounts(height, width), stroke, height, width);
    if (area(counts) === 0) return; // entirely outside the image
    const key = studio.createObject(
      { label: studio.activeLabel, rle: fromCounts(counts, height, width), drawn: { tool: "brush", strokes: [stroke] } },
      "brush stroke",
    );
    studio.select(key);
  }

  cancel() {
    this.points = null;
    this.target = null;
  }

  key(event) {
    if (this.points && event.key === "Escape") {
      this.cancel();
      return true;
    }
    return false;
  }

  draw(ctx, viewer) {
    const size = this.studio.brushSize * viewer.scale;
    const colour = this.mode === "erase" ? "#ffffff" : this.studio.colourOf(this.studio.activeLabel);
    if (this.points) {
      const targetColour =
        this.mode === "erase" ? colour : this.studio.colourOf(this.studio.store.get(this.target)?.label ?? this.studio.activeLabel);
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.lineWidth = Math.max(1, size);
      ctx.strokeStyle = targetColour;
      ctx.globalAlpha = 0.55;
      ctx.beginPath();
      this.points.forEach((p, i) => {
        const [x, y] = viewer.toDisplay(p[0], p[1]);
        if (i === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      if (this.points.length === 1) ctx.lineTo(...viewer.toDisplay(this.points[0][0] + 0.001, this.points[0][1]));
      ctx.stroke();
      ctx.globalAlpha = 1;
    }
    if (viewer.pointer) {
      const [x, y] = viewer.toDisplay(...viewer.pointer);
      ctx.beginPath();
      ctx.arc(x, y, Math.max(1, size / 2), 0, Math.PI * 2);
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = colour;
      ctx.setLineDash(this.mode === "erase" ? [4, 3] : []);
      ctx.stroke();
    }
  }
}
