// Polygon: click the vertices; click the first vertex again, double-click or press Enter to close;
// Backspace (or Ctrl+Z while drawing) takes the last vertex back, Esc drops the polygon. With no
// polygon under way, the selected polygon's vertices can be dragged.

import { area, polygonToRle, countsFromString } from "../rle.js";
import { clampToImage, roundPoint } from "./geometry.js";

const CLOSE_PX = 8;

export class PolygonTool {
  constructor(studio, vertices) {
    this.name = "polygon";
    this.studio = studio;
    this.vertices = vertices;
    this.points = [];
    this.cursor = "drawing";
  }

  get busy() {
    return this.points.length > 0 || Boolean(this.vertices.drag);
  }

  _nearFirst(point) {
    if (this.points.length < 3) return false;
    const [fx, fy] = this.studio.viewer.toDisplay(...this.points[0]);
    const [px, py] = this.studio.viewer.toDisplay(...point);
    return Math.hypot(fx - px, fy - py) <= CLOSE_PX;
  }

  pointerDown(point, event) {
    if (!this.points.length && this.vertices.grab(point)) return true;
    if (!this.studio.requireLabel()) return true;
    if (event.detail > 1) return true; // the second click of a double-click closes instead
    if (this._nearFirst(point)) {
      this.close();
      return true;
    }
    const { width, height } = this.studio.store;
    this.points.push(roundPoint(clampToImage(point, width, height)));
    this.studio.hint(
      this.points.length < 3
        ? "Click the next vertex."
        : "Click the next vertex; click the first one, double-click or press Enter to close.",
    );
    return true;
  }

  pointerMove(point) {
    this.vertices.move(point);
  }

  pointerUp() {
    this.vertices.drop();
  }

  doubleClick() {
    if (this.points.length >= 3) this.close();
  }

  close() {
    const points = this.points;
    this.points = [];
    if (points.length < 3) return;
    const { height, width } = this.studio.store;
    const rle = polygonToRle(points, height, width);
    if (area(countsFromString(rle.counts)) === 0) {
      this.studio.hint("That polygon covers no pixel: draw it larger.");
      return;
    }
    this.studio.hint("");
    this.studio.createObject({ label: this.studio.activeLabel, rle, drawn: { tool: "polygon", points } }, "draw a polygon");
  }

  cancel() {
    this.points = [];
    this.vertices.cancel();
  }

  /** Keys while drawing: Enter closes, Backspace / Ctrl+Z take the last vertex back, Esc drops it. */
  key(event) {
    if (!this.points.length) return false;
    const undoKey = (event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z" && !event.shiftKey;
    if (event.key === "Enter") this.close();
    else if (event.key === "Backspace" || undoKey) this.points.pop();
    else if (event.key === "Escape") this.cancel();
    else return false;
    this.studio.viewer.requestRender();
    return true;
  }

  draw(ctx, viewer) {
    this.vertices.draw(ctx);
    if (!this.points.length) return;
    const colour = this.studio.colourOf(this.studio.activeLabel);
    const display = this.points.map((p) => viewer.toDisplay(...p));
    ctx.beginPath();
    display.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    if (viewer.pointer) ctx.lineTo(...viewer.toDisplay(...viewer.pointer));
    ctx.lineWidth = 2;
    ctx.strokeStyle = colour;
    ctx.stroke();
    display.forEach(([x, y], i) => {
      ctx.beginPath();
      ctx.arc(x, y, i === 0 && this.points.length >= 3 ? 6 : 3.5, 0, Math.PI * 2);
      ctx.fillStyle = i === 0 ? "#fff" : colour;
      ctx.fill();
      ctx.strokeStyle = colour;
      ctx.stroke();
    });
  }
}
