// Crowd mask tool (templates/crowd/_mask_tool.html): the worker outlines what the task asks for as
// one or more polygons on a canvas laid over the picture.
//
// Click to add a point; click the first point again (or press Enter, or "Close shape") to close the
// shape; Backspace takes the last point back (with no shape open, it reopens the last closed shape);
// Delete clears every shape. The hidden field holds {"size": [height, width], "polygons":
// [[[x, y], ...], ...]} in the picture's own pixels; the server turns it into the mask with
// pycocotools, so nothing here encodes a mask.

const CLOSE_PX = 8;
const FILL_ALPHA = 0.35;

const round = (value) => Math.round(value * 100) / 100;

class MaskDrawing {
  constructor(root) {
    this.root = root;
    this.image = root.querySelector("img.crowd-image");
    this.canvas = root.querySelector("canvas.crowd-canvas");
    this.input = root.querySelector("input[data-mask-input]");
    this.hint = root.querySelector("[data-mask-hint]");
    this.colour = root.dataset.colour || "#1f77b4";
    this.shapes = [];
    this.points = [];
    this.pointer = null;
    this.pending = null;
    this.restore();
    this.canvas.addEventListener("pointerdown", (event) => this.pointerDown(event));
    this.canvas.addEventListener("pointermove", (event) => this.pointerMove(event));
    this.canvas.addEventListener("pointerleave", () => {
      this.pointer = null;
      this.render();
    });
    root.querySelectorAll("[data-mask-action]").forEach((button) => {
      button.addEventListener("click", () => this.act(button.dataset.maskAction));
    });
    new ResizeObserver(() => this.render()).observe(this.image);
    if (!this.image.complete) this.image.addEventListener("load", () => this.render());
  }

  get width() {
    return this.image.naturalWidth;
  }

  get height() {
    return this.image.naturalHeight;
  }

  /** Shapes posted before (a refused submission) come back as they were, once the picture is
   * known to be the size they were drawn on; anything unreadable is dropped. */
  restore() {
    let drawing = null;
    try {
      drawing = JSON.parse(this.input.value || "null");
    } catch {
      drawing = null;
    }
    this.pending = drawing && Array.isArray(drawing.polygons) ? drawing : null;
  }

  applyPending() {
    const drawing = this.pending;
    this.pending = null;
    const [h, w] = Array.isArray(drawing.size) ? drawing.size : [];
    if (h !== this.height || w !== this.width) return;
    const isPoint = (p) => Array.isArray(p) && p.length === 2 && p.every(Number.isFinite);
    this.shapes = drawing.polygons.filter((shape) => Array.isArray(shape) && shape.length >= 3 && shape.every(isPoint));
  }

  /** The pointer in the picture's own pixels, kept inside the picture. */
  toImage(event) {
    const box = this.canvas.getBoundingClientRect();
    const scale = this.width / box.width;
    const x = Math.min(Math.max((event.clientX - box.left) * scale, 0), this.width);
    const y = Math.min(Math.max((event.clientY - box.top) * (this.height / box.height), 0), this.height);
    return [round(x), round(y)];
  }

  displayScale() {
    return this.canvas.getBoundingClientRect().width / this.width || 1;
  }

  nearFirst(point) {
    if (this.points.length < 3) return false;
    const [fx, fy] = this.points[0];
    return Math.hypot(fx - point[0], fy - point[1]) * this.displayScale() <= CLOSE_PX;
  }

  pointerDown(event) {
    if (event.button !== 0 || !this.width) return;
    event.preventDefault();
    this.canvas.focus();
    MaskDrawing.active = this;
    const point = this.toImage(event);
    if (this.nearFirst(point)) this.close();
    else this.points.push(point);
    this.changed();
  }

  pointerMove(event) {
    if (!this.width) return;
    this.pointer = this.toImage(event);
    this.render();
  }

  close() {
    if (this.points.length < 3) return;
    this.shapes.push(this.points);
    this.points = [];
  }

  act(action) {
    MaskDrawing.active = this;
    if (action === "close" && this.points.length < 3) {
      this.say("A shape needs at least three points.");
      return;
    }
    if (action === "close") this.close();
    else if (action === "undo") this.undo();
    else if (action === "clear") {
      this.shapes = [];
      this.points = [];
    }
    this.changed();
  }

  undo() {
    if (this.points.length) this.points.pop();
    else if (this.shapes.length) this.points = this.shapes.pop();
  }

  say(text) {
    if (this.hint) this.hint.textContent = text;
  }

  changed() {
    const drawing = { size: [this.height, this.width], polygons: this.shapes };
    this.input.value = this.shapes.length ? JSON.stringify(drawing) : "";
    const open = this.points.length;
    if (open) this.say(open < 3 ? "Click the next point." : "Click the first point (or press Enter) to close the shape.");
    else if (this.shapes.length) this.say(`${this.shapes.length} shape(s). Draw another, or submit.`);
    this.render();
  }

  /** Before the form is sent: an open shape of three points or more is closed; none at all is refused. */
  finish() {
    if (this.points.length >= 3) this.close();
    this.changed();
    if (!this.shapes.length) {
      this.say("Draw the outline before submitting.");
      return false;
    }
    return true;
  }

  render() {
    const { canvas } = this;
    const box = canvas.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(box.width * ratio));
    canvas.height = Math.max(1, Math.round(box.height * ratio));
    if (!this.width) return;
    if (this.pending) this.applyPending();
    const ctx = canvas.getContext("2d");
    const scale = (box.width * ratio) / this.width;
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    const line = ratio / scale;
    ctx.lineWidth = 2 * line;
    ctx.strokeStyle = this.colour;
    ctx.fillStyle = this.colour;
    for (const shape of this.shapes) {
      ctx.beginPath();
      shape.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.closePath();
      ctx.globalAlpha = FILL_ALPHA;
      ctx.fill();
      ctx.globalAlpha = 1;
      ctx.stroke();
    }
    if (!this.points.length) return;
    ctx.beginPath();
    this.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    if (this.pointer) ctx.lineTo(...this.pointer);
    ctx.stroke();
    this.points.forEach(([x, y], i) => {
      ctx.beginPath();
      ctx.arc(x, y, (i === 0 && this.points.length >= 3 ? 6 : 3.5) * line, 0, Math.PI * 2);
      ctx.fillStyle = i === 0 ? "#fff" : this.colour;
      ctx.fill();
      ctx.stroke();
    });
  }
}

MaskDrawing.active = null;

function onKey(event, drawings) {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target;
  if (target instanceof HTMLElement && target.matches("input, textarea, select, button, summary")) return;
  const drawing = MaskDrawing.active || drawings[0];
  const action = { Enter: "close", Backspace: "undo", Delete: "clear" }[event.key];
  if (!drawing || !action) return;
  event.preventDefault();
  drawing.act(action);
}

function start() {
  const drawings = [...document.querySelectorAll("[data-crowd-mask]")].map((root) => new MaskDrawing(root));
  if (!drawings.length) return;
  document.addEventListener("keydown", (event) => onKey(event, drawings));
  const forms = new Set(drawings.map((drawing) => drawing.root.closest("form")));
  for (const form of forms) {
    form.addEventListener("submit", (event) => {
      const mine = drawings.filter((drawing) => drawing.root.closest("form") === form);
      const ready = mine.map((drawing) => drawing.finish());
      if (ready.includes(false)) event.preventDefault();
    });
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
