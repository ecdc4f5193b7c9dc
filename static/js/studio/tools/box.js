// Box: press at one corner, drag, let go at the other. Stored as the two corners and rasterised as
// pycocotools does for the box [x0, y0, x1 - x0, y1 - y0].

import { area, boxToRle, countsFromString } from "../rle.js";
import { clampToImage, roundPoint } from "./geometry.js";

export class BoxTool {
  constructor(studio) {
    this.name = "box";
    this.studio = studio;
    this.start = null;
    this.end = null;
    this.cursor = "drawing";
  }

  get busy() {
    return Boolean(this.start);
  }

  pointerDown(point) {
    if (!this.studio.requireLabel()) return true;
    const { width, height } = this.studio.store;
    this.start = clampToImage(point, width, height);
    this.end = this.start;
    return true;
  }

  pointerMove(point) {
    if (!this.start) return;
    const { width, height } = this.studio.store;
    this.end = clampToImage(point, width, height);
  }

  pointerUp(point) {
    if (!this.start) return;
    this.pointerMove(point);
    const [ax, ay] = roundPoint(this.start);
    const [bx, by] = roundPoint(this.end);
    this.start = this.end = null;
    const box = [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
    const { height, width } = this.studio.store;
    const rle = boxToRle(box, height, width);
    if (box[2] - box[0] < 1 || box[3] - box[1] < 1 || area(countsFromString(rle.counts)) === 0) {
      this.studio.hint("Drag from one corner of the box to the other.");
      return;
    }
    this.studio.hint("");
    this.studio.createObject({ label: this.studio.activeLabel, rle, drawn: { tool: "box", box } }, "draw a box");
  }

  cancel() {
    this.start = this.end = null;
  }

  key(event) {
    if (this.start && event.key === "Escape") {
      this.cancel();
      return true;
    }
    return false;
  }

  draw(ctx, viewer) {
    if (!this.start) return;
    const [x0, y0] = viewer.toDisplay(...this.start);
    const [x1, y1] = viewer.toDisplay(...this.end);
    ctx.lineWidth = 2;
    ctx.strokeStyle = this.studio.colourOf(this.studio.activeLabel);
    ctx.setLineDash([6, 4]);
    ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
  }
}
