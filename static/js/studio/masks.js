// Masks on the canvas: each object's RLE drawn in its label's colour with an outline, at an
// adjustable opacity. Each mask becomes a small sprite the size of its bounding box (decoded once,
// again only when its RLE or colour changes), so hundreds of objects draw in one pass of
// drawImage calls and a brush stroke re-decodes only the object it touched.

import { regionFromCounts } from "./rle.js";

function rgb(hex) {
  const value = Number.parseInt(String(hex).slice(1), 16);
  return Number.isNaN(value) ? [31, 119, 180] : [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

function sprite(counts, height, width, colour) {
  const region = regionFromCounts(counts, height, width);
  if (!region) return null;
  const { x, y, width: w, height: h, bitmap } = region;
  const [r, g, b] = rgb(colour);
  const fill = new ImageData(w, h);
  const outline = new ImageData(w, h);
  for (let row = 0; row < h; row++) {
    for (let col = 0; col < w; col++) {
      const i = row * w + col;
      if (!bitmap[i]) continue;
      const o = i * 4;
      fill.data[o] = r;
      fill.data[o + 1] = g;
      fill.data[o + 2] = b;
      fill.data[o + 3] = 255;
      const edge =
        col === 0 || row === 0 || col === w - 1 || row === h - 1 ||
        !bitmap[i - 1] || !bitmap[i + 1] || !bitmap[i - w] || !bitmap[i + w];
      if (edge) {
        outline.data[o] = r;
        outline.data[o + 1] = g;
        outline.data[o + 2] = b;
        outline.data[o + 3] = 255;
      }
    }
  }
  const canvas = (data) => {
    const c = document.createElement("canvas");
    c.width = w;
    c.height = h;
    c.getContext("2d").putImageData(data, 0, 0);
    return c;
  };
  return { x, y, width: w, height: h, bitmap, fill: canvas(fill), outline: canvas(outline) };
}

export class MaskLayer {
  constructor(store, colourOf) {
    this.store = store;
    this.colourOf = colourOf; // label id -> "#rrggbb"
    this.opacity = 0.45;
    this.hideAll = false;
    this.suspended = false; // a video playing: its frames come with their masks drawn in
    this.selected = null; // key of the selected object
    this.sprites = new Map(); // key -> {counts, colour, sprite}
  }

  spriteOf(object) {
    const colour = this.colourOf(object.label);
    const cached = this.sprites.get(object.key);
    if (cached && cached.counts === object.counts && cached.colour === colour) return cached.sprite;
    const made = sprite(object.counts, this.store.height, this.store.width, colour);
    this.sprites.set(object.key, { counts: object.counts, colour, sprite: made });
    return made;
  }

  forget(key) {
    this.sprites.delete(key);
  }

  visible(object) {
    return !this.hideAll && !this.suspended && !object.hidden;
  }

  draw(ctx) {
    ctx.imageSmoothingEnabled = false;
    for (const object of this.store.ordered()) {
      if (!this.visible(object)) continue;
      const s = this.spriteOf(object);
      if (!s) continue;
      const selected = object.key === this.selected;
      // A pre-annotation nobody has accepted yet is fainter than the objects people made.
      const opacity = object.proposed ? this.opacity * 0.6 : this.opacity;
      ctx.globalAlpha = selected ? Math.min(1, opacity + 0.2) : opacity;
      ctx.drawImage(s.fill, s.x, s.y);
      ctx.globalAlpha = 1;
      ctx.drawImage(s.outline, s.x, s.y);
    }
  }

  /** The topmost visible object with pixel (ix, iy) set, or null. */
  hit(ix, iy) {
    const col = Math.floor(ix);
    const row = Math.floor(iy);
    const objects = this.store.ordered();
    for (let i = objects.length - 1; i >= 0; i--) {
      const object = objects[i];
      if (!this.visible(object)) continue;
      const s = this.spriteOf(object);
      if (!s || col < s.x || row < s.y || col >= s.x + s.width || row >= s.y + s.height) continue;
      if (s.bitmap[(row - s.y) * s.width + (col - s.x)]) return object;
    }
    return null;
  }

  /** Whether pixel (ix, iy) is set in the object's mask. */
  contains(object, ix, iy) {
    const s = this.spriteOf(object);
    const col = Math.floor(ix);
    const row = Math.floor(iy);
    if (!s || col < s.x || row < s.y || col >= s.x + s.width || row >= s.y + s.height) return false;
    return s.bitmap[(row - s.y) * s.width + (col - s.x)] === 1;
  }

  /** Bounding box [x, y, w, h] of an object's mask in image pixels, or null. */
  boxOf(object) {
    const s = this.spriteOf(object);
    return s ? [s.x, s.y, s.width, s.height] : null;
  }

  /** The mean position of the object's pixels (image coordinates, pixel centres), or null. */
  centroidOf(object) {
    const s = this.spriteOf(object);
    if (!s) return null;
    if (!s.centroid) {
      let sx = 0;
      let sy = 0;
      let n = 0;
      for (let row = 0; row < s.height; row++) {
        for (let col = 0; col < s.width; col++) {
          if (!s.bitmap[row * s.width + col]) continue;
          sx += col;
          sy += row;
          n++;
        }
      }
      s.centroid = n ? [s.x + sx / n + 0.5, s.y + sy / n + 0.5] : null;
    }
    return s.centroid;
  }
}
