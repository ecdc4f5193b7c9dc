// The canvas viewer: the image with zoom (wheel, + / -), pan (space + drag, middle button) and fit.
//
// Everything in the data is in original-image pixels: (0, 0) is the image's top-left corner and
// (width, height) its bottom-right one; pixel (col, row) covers [col, col + 1) × [row, row + 1).
// Display pixels exist only here: a point on screen is (image point × scale + offset).

const MIN_SCALE = 0.02;
const MAX_SCALE = 64;
const ZOOM_STEP = 1.25;

export function isFormField(target) {
  return target instanceof HTMLElement && target.matches("input, textarea, select, [contenteditable], button, a[href]");
}

export class Viewer extends EventTarget {
  constructor(stage, canvas, { width, height }) {
    super();
    this.stage = stage;
    this.canvas = canvas;
    this.width = width;
    this.height = height;
    this.ctx = canvas.getContext("2d");
    this.scale = 1;
    this.x = 0;
    this.y = 0;
    this.image = null;
    this.layers = []; // draw(ctx, viewer) in image coordinates
    this.overlays = []; // draw(ctx, viewer) in display coordinates
    this.tool = null; // pointerDown / pointerMove / pointerUp / doubleClick(point, event)
    this.fitted = true; // follows the stage's size until the user zooms or pans
    this.spaceHeld = false;
    this.pan = null;
    this.pointer = null; // last pointer position, image coordinates
    this.frame = 0;
    this._listen();
    new ResizeObserver(() => this.resize()).observe(stage);
    this.resize();
  }

  setImage(image) {
    this.image = image;
    this.requestRender();
  }

  // --- coordinates -------------------------------------------------------------------------------

  get viewWidth() {
    return this.canvas.getBoundingClientRect().width;
  }

  get viewHeight() {
    return this.canvas.getBoundingClientRect().height;
  }

  /** Image coordinates of a client (mouse event) position. */
  toImage(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    return [(clientX - rect.left - this.x) / this.scale, (clientY - rect.top - this.y) / this.scale];
  }

  /** Display coordinates (CSS pixels inside the canvas) of an image point. */
  toDisplay(ix, iy) {
    return [ix * this.scale + this.x, iy * this.scale + this.y];
  }

  // --- zoom and pan ------------------------------------------------------------------------------

  fit() {
    const w = this.viewWidth;
    const h = this.viewHeight;
    if (!w || !h) return;
    this.scale = Math.min(w / this.width, h / this.height);
    this.x = (w - this.width * this.scale) / 2;
    this.y = (h - this.height * this.scale) / 2;
    this.fitted = true;
    this._changed();
  }

  /** Zoom by `factor` keeping the image point under display point (cx, cy) where it is. */
  zoomAt(factor, cx, cy) {
    const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    const ix = (cx - this.x) / this.scale;
    const iy = (cy - this.y) / this.scale;
    this.scale = scale;
    this.x = cx - ix * scale;
    this.y = cy - iy * scale;
    this.fitted = false;
    this._changed();
  }

  zoomIn() {
    this.zoomAt(ZOOM_STEP, this.viewWidth / 2, this.viewHeight / 2);
  }

  zoomOut() {
    this.zoomAt(1 / ZOOM_STEP, this.viewWidth / 2, this.viewHeight / 2);
  }

  panBy(dx, dy) {
    this.x += dx;
    this.y += dy;
    this.fitted = false;
    this._changed();
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = this.viewWidth;
    const h = this.viewHeight;
    this.canvas.width = Math.max(1, Math.round(w * dpr));
    this.canvas.height = Math.max(1, Math.round(h * dpr));
    if (this.fitted) this.fit();
    else this.requestRender();
  }

  _changed() {
    this.dispatchEvent(new Event("view"));
    this.requestRender();
  }

  // --- drawing -----------------------------------------------------------------------------------

  requestRender() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    const { ctx } = this;
    const dpr = this.canvas.width / Math.max(1, this.viewWidth);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(dpr * this.scale, 0, 0, dpr * this.scale, dpr * this.x, dpr * this.y);
    // Sharp pixels when zoomed in (annotators look at pixels), smooth when zoomed out.
    ctx.imageSmoothingEnabled = this.scale < 1;
    if (this.image) ctx.drawImage(this.image, 0, 0, this.width, this.height);
    else {
      ctx.fillStyle = "#444";
      ctx.fillRect(0, 0, this.width, this.height);
    }
    for (const layer of this.layers) {
      ctx.save();
      layer.draw(ctx, this);
      ctx.restore();
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    for (const overlay of this.overlays) {
      ctx.save();
      overlay.draw(ctx, this);
      ctx.restore();
    }
    this.dispatchEvent(new Event("rendered"));
  }

  // --- input -------------------------------------------------------------------------------------

  _listen() {
    const { canvas, stage } = this;
    canvas.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const rect = canvas.getBoundingClientRect();
        // Trackpads send many small deltas, wheels a few large ones: zoom by the amount scrolled.
        const factor = Math.exp(-Math.max(-100, Math.min(100, event.deltaY)) * 0.0022);
        this.zoomAt(factor, event.clientX - rect.left, event.clientY - rect.top);
      },
      { passive: false },
    );
    canvas.addEventListener("mousedown", (event) => {
      if (event.button === 1) event.preventDefault(); // no autoscroll on the middle button
    });
    canvas.addEventListener("pointerdown", (event) => {
      stage.focus({ preventScroll: true });
      const point = this.toImage(event.clientX, event.clientY);
      this.pointer = point;
      if (event.button === 1 || (event.button === 0 && this.spaceHeld)) {
        event.preventDefault();
        this._startPan(event);
        return;
      }
      if (event.button !== 0 || !this.tool) return;
      canvas.setPointerCapture(event.pointerId);
      const handled = this.tool.pointerDown?.(point, event);
      if (handled === "pan") this._startPan(event);
    });
    canvas.addEventListener("pointermove", (event) => {
      const point = this.toImage(event.clientX, event.clientY);
      this.pointer = point;
      if (this.pan) {
        this.panBy(event.clientX - this.pan.x, event.clientY - this.pan.y);
        this.pan.x = event.clientX;
        this.pan.y = event.clientY;
        return;
      }
      this.tool?.pointerMove?.(point, event);
      this.requestRender();
    });
    const end = (event) => {
      if (canvas.hasPointerCapture(event.pointerId)) canvas.releasePointerCapture(event.pointerId);
      if (this.pan) {
        this.pan = null;
        stage.classList.remove("panning");
        return;
      }
      if (event.type === "pointerup" && event.button === 0) {
        this.tool?.pointerUp?.(this.toImage(event.clientX, event.clientY), event);
      } else if (event.type === "pointercancel") this.tool?.cancel?.();
      this.requestRender();
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("pointerleave", () => {
      this.pointer = null;
      this.requestRender();
    });
    canvas.addEventListener("dblclick", (event) => {
      this.tool?.doubleClick?.(this.toImage(event.clientX, event.clientY), event);
    });
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    // Space held down turns dragging into panning, wherever the focus is (except in a field).
    window.addEventListener("keydown", (event) => {
      if (event.code !== "Space" || isFormField(event.target)) return;
      event.preventDefault();
      if (!this.spaceHeld) {
        this.spaceHeld = true;
        stage.classList.add("can-pan");
      }
    });
    window.addEventListener("keyup", (event) => {
      if (event.code !== "Space") return;
      this.spaceHeld = false;
      stage.classList.remove("can-pan");
    });
    window.addEventListener("blur", () => {
      this.spaceHeld = false;
      stage.classList.remove("can-pan");
    });
  }

  _startPan(event) {
    this.pan = { x: event.clientX, y: event.clientY };
    this.canvas.setPointerCapture(event.pointerId);
    this.stage.classList.add("panning");
  }
}
