// Dragging the vertices of the selected polygon (the select and polygon tools share this).

import { fromCounts, area } from "../rle.js";
import { clampToImage, countsFromDrawn, editablePolygon, roundPoint } from "./geometry.js";

const GRAB_PX = 7; // how near (display pixels) a press must be to grab a vertex

export class VertexEditor {
  constructor(studio) {
    this.studio = studio;
    this.drag = null; // {key, index, points}
  }

  /** Start dragging a vertex of the selected polygon under `point`; true when one was grabbed. */
  grab(point) {
    const { studio } = this;
    const object = studio.store.get(studio.selected);
    const points = editablePolygon(object);
    if (!points || !studio.masks.visible(object)) return false;
    const [px, py] = studio.viewer.toDisplay(...point);
    let best = -1;
    let bestDistance = GRAB_PX;
    points.forEach(([x, y], index) => {
      const [dx, dy] = studio.viewer.toDisplay(x, y);
      const distance = Math.hypot(dx - px, dy - py);
      if (distance <= bestDistance) {
        best = index;
        bestDistance = distance;
      }
    });
    if (best < 0) return false;
    this.drag = { key: object.key, index: best, points: points.map((p) => [...p]) };
    return true;
  }

  move(point) {
    if (!this.drag) return;
    const { width, height } = this.studio.store;
    this.drag.points[this.drag.index] = roundPoint(clampToImage(point, width, height));
  }

  /** Drop the vertex: the mask is made again from the new polygon (and any strokes) and saved. */
  drop() {
    const drag = this.drag;
    this.drag = null;
    if (!drag) return;
    const { studio } = this;
    const object = studio.store.get(drag.key);
    if (!object) return;
    const drawn = { ...object.drawn, points: drag.points };
    const { height, width } = studio.store;
    const counts = countsFromDrawn(drawn, height, width);
    if (!counts || area(counts) === 0) {
      studio.hint("That polygon covers no pixel of the image: the vertex goes back.");
      return;
    }
    studio.editObject(drag.key, { drawn, rle: fromCounts(counts, height, width) }, "move a vertex");
  }

  cancel() {
    this.drag = null;
  }

  /** The selected polygon's outline and vertex handles, in display pixels. */
  draw(ctx) {
    const { studio } = this;
    const object = studio.store.get(studio.selected);
    const points = this.drag && this.drag.key === object?.key ? this.drag.points : editablePolygon(object);
    if (!points || !studio.masks.visible(object)) return;
    const colour = studio.colourOf(object.label);
    ctx.beginPath();
    points.forEach(([x, y], index) => {
      const [dx, dy] = studio.viewer.toDisplay(x, y);
      if (index === 0) ctx.moveTo(dx, dy);
      else ctx.lineTo(dx, dy);
    });
    ctx.closePath();
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = colour;
    ctx.stroke();
    for (const [x, y] of points) {
      const [dx, dy] = studio.viewer.toDisplay(x, y);
      ctx.beginPath();
      ctx.rect(dx - 3.5, dy - 3.5, 7, 7);
      ctx.fillStyle = "#fff";
      ctx.fill();
      ctx.strokeStyle = colour;
      ctx.stroke();
    }
  }
}
