// COCO run-length encoding in the browser, bit for bit the same as pycocotools (maskApi.c).
//
// A mask of h rows and w columns is read in column-major order (down the first column, then the
// next: numpy's Fortran order). Its counts alternate runs of 0 and 1, starting with a run of 0
// (which may be empty). The compressed "counts" string stores each count in 5-bit groups, one
// character per group (ASCII 48 + bits; 0x20 marks "more groups follow", 0x10 is the sign of the
// last group), and from the fourth count on stores the difference to the count two places before.
//
// Polygons and boxes are rasterised exactly as pycocotools' frPyObjects does (rleFrPoly, rleFrBbox),
// so the RLE the studio stores for a drawn polygon or box equals the one the server computes from
// the same vertices with annotation/masks.py (polygon_to_rle, box_to_rle). Brush strokes have no
// pycocotools counterpart; their rule is brushStrokeRegion's below.

// --- counts <-> the compressed string ------------------------------------------------------------

/** The counts of a compressed RLE string (rleFrString). */
export function countsFromString(text) {
  const counts = new Uint32Array(text.length);
  let m = 0;
  let p = 0;
  while (p < text.length) {
    let x = 0;
    let k = 0;
    let more = 1;
    while (more) {
      if (p >= text.length) throw new Error("RLE counts string ends in the middle of a number");
      const c = text.charCodeAt(p) - 48;
      x += (c & 0x1f) * 2 ** (5 * k); // x |= (c & 0x1f) << 5k, without 32-bit overflow
      more = c & 0x20;
      p++;
      k++;
      if (!more && c & 0x10) x -= 2 ** (5 * k); // x |= -1 << 5k: the number is negative
    }
    if (m > 2) x += counts[m - 2];
    counts[m++] = x; // a Uint32Array wraps like C's (uint) cast
  }
  return counts.slice(0, m);
}

/** The compressed string of counts (rleToString). */
export function countsToString(counts) {
  const bytes = [];
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i];
    if (i > 2) x -= counts[i - 2];
    let more = true;
    while (more) {
      let c = ((x % 32) + 32) % 32; // x & 0x1f for negative numbers too
      x = Math.floor(x / 32); // arithmetic shift right by 5
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      bytes.push(c + 48);
    }
  }
  return new TextDecoder("ascii").decode(new Uint8Array(bytes));
}

// --- counts <-> masks ------------------------------------------------------------------------------

/** Counts of a column-major 0/1 mask of h × w (rleEncode). */
export function countsFromMask(mask, h, w) {
  const total = h * w;
  const counts = [];
  let previous = 0;
  let run = 0;
  for (let j = 0; j < total; j++) {
    if (mask[j] !== previous) {
      counts.push(run);
      run = 0;
      previous = mask[j];
    }
    run++;
  }
  counts.push(run);
  return Uint32Array.from(counts);
}

/** A column-major 0/1 mask (Uint8Array of h × w) from counts (rleDecode). */
export function maskFromCounts(counts, h, w) {
  const mask = new Uint8Array(h * w);
  let at = 0;
  let value = 0;
  for (let j = 0; j < counts.length; j++) {
    const end = Math.min(at + counts[j], mask.length);
    if (value) mask.fill(1, at, end);
    at += counts[j];
    value = value ? 0 : 1;
  }
  if (at !== h * w) throw new Error(`RLE counts sum to ${at}, not ${h * w}`);
  return mask;
}

/** {"size": [h, w], "counts": "..."} of a column-major mask. */
export function encode(mask, h, w) {
  return { size: [h, w], counts: countsToString(countsFromMask(mask, h, w)) };
}

/** The column-major Uint8Array mask of an RLE {"size": [h, w], "counts": "..."}. */
export function decode(rle) {
  const [h, w] = rle.size;
  return maskFromCounts(countsFromString(rle.counts), h, w);
}

export function fromCounts(counts, h, w) {
  return { size: [h, w], counts: countsToString(counts) };
}

export function rowMajorToColumnMajor(rows, h, w) {
  const columns = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) columns[x * h + y] = rows[y * w + x];
  return columns;
}

export function columnMajorToRowMajor(columns, h, w) {
  const rows = new Uint8Array(h * w);
  for (let x = 0; x < w; x++) for (let y = 0; y < h; y++) rows[y * w + x] = columns[x * h + y];
  return rows;
}

// --- measures and set operations on counts -----------------------------------------------------------

/** Pixels set (rleArea). */
export function area(counts) {
  let total = 0;
  for (let j = 1; j < counts.length; j += 2) total += counts[j];
  return total;
}

/** [x, y, width, height] of the set pixels, as pycocotools' toBbox (rleToBbox) gives it. */
export function bbox(counts, h, w) {
  const m = Math.floor(counts.length / 2) * 2;
  if (m === 0) return [0, 0, 0, 0];
  let xs = w;
  let ys = h;
  let xe = 0;
  let ye = 0;
  let cc = 0;
  let xp = 0;
  for (let j = 0; j < m; j++) {
    cc += counts[j];
    const t = cc - (j % 2);
    const y = t % h;
    const x = (t - y) / h;
    if (j % 2 === 0) xp = x;
    else if (xp < x) {
      ys = 0;
      ye = h - 1;
    }
    xs = Math.min(xs, x);
    xe = Math.max(xe, x);
    ys = Math.min(ys, y);
    ye = Math.max(ye, y);
  }
  return [xs, ys, xe - xs + 1, ye - ys + 1];
}

/** Union (or intersection) of several counts of the same size (rleMerge). */
export function merge(list, h, w, intersect = false) {
  if (list.length === 0) return new Uint32Array(0);
  let current = Array.from(list[0]);
  for (let i = 1; i < list.length; i++) {
    const a = current;
    const b = list[i];
    const out = [];
    let ca = a[0];
    let cb = b[0];
    let v = 0;
    let va = 0;
    let vb = 0;
    let ia = 1;
    let ib = 1;
    let cc = 0;
    let ct = 1;
    while (ct > 0) {
      const c = Math.min(ca, cb);
      cc += c;
      ct = 0;
      ca -= c;
      if (!ca && ia < a.length) {
        ca = a[ia++];
        va = va ? 0 : 1;
      }
      ct += ca;
      cb -= c;
      if (!cb && ib < b.length) {
        cb = b[ib++];
        vb = vb ? 0 : 1;
      }
      ct += cb;
      const vp = v;
      v = intersect ? va && vb : va || vb;
      if (v !== vp || ct === 0) {
        out.push(cc);
        cc = 0;
      }
    }
    current = out;
  }
  return Uint32Array.from(current);
}

/** The complement of a mask (rleInvert). */
export function invert(counts) {
  if (counts.length && counts[0] === 0) return counts.slice(1);
  const out = new Uint32Array(counts.length + 1);
  out.set(counts, 1);
  return out;
}

// --- geometry as pycocotools rasterises it ----------------------------------------------------------

/** Counts of one polygon, flat [x0, y0, x1, y1, ...] in image pixels (rleFrPoly). */
export function polygonCounts(xy, h, w) {
  const k = xy.length >> 1;
  const scale = 5;
  const x = new Array(k + 1);
  const y = new Array(k + 1);
  for (let j = 0; j < k; j++) x[j] = Math.trunc(scale * xy[j * 2] + 0.5);
  x[k] = x[0];
  for (let j = 0; j < k; j++) y[j] = Math.trunc(scale * xy[j * 2 + 1] + 0.5);
  y[k] = y[0];
  // upsample: discrete points densely along the whole boundary
  const u = [];
  const v = [];
  for (let j = 0; j < k; j++) {
    let xs = x[j];
    let xe = x[j + 1];
    let ys = y[j];
    let ye = y[j + 1];
    const dx = Math.abs(xe - xs);
    const dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      [xs, xe] = [xe, xs];
      [ys, ye] = [ye, ys];
    }
    const s = dx >= dy ? (ye - ys) / dx : (xe - xs) / dy;
    if (dx >= dy) {
      for (let d = 0; d <= dx; d++) {
        const t = flip ? dx - d : d;
        u.push(t + xs);
        v.push(Math.trunc(ys + s * t + 0.5));
      }
    } else {
      for (let d = 0; d <= dy; d++) {
        const t = flip ? dy - d : d;
        v.push(t + ys);
        u.push(Math.trunc(xs + s * t + 0.5));
      }
    }
  }
  // points on the y-boundary, downsampled to pixel columns
  const starts = [];
  for (let j = 1; j < u.length; j++) {
    if (u[j] === u[j - 1]) continue;
    let xd = u[j] < u[j - 1] ? u[j] : u[j] - 1;
    xd = (xd + 0.5) / scale - 0.5;
    if (Math.floor(xd) !== xd || xd < 0 || xd > w - 1) continue;
    let yd = v[j] < v[j - 1] ? v[j] : v[j - 1];
    yd = (yd + 0.5) / scale - 0.5;
    if (yd < 0) yd = 0;
    else if (yd > h) yd = h;
    yd = Math.ceil(yd);
    starts.push(xd * h + yd);
  }
  // run lengths from the sorted boundary positions
  const a = Float64Array.from(starts.concat([h * w])).sort();
  let p = 0;
  for (let j = 0; j < a.length; j++) {
    const t = a[j];
    a[j] -= p;
    p = t;
  }
  const b = [];
  let j = 0;
  b.push(a[j++]);
  while (j < a.length) {
    if (a[j] > 0) b.push(a[j++]);
    else {
      j++;
      if (j < a.length) b[b.length - 1] += a[j++];
    }
  }
  return Uint32Array.from(b);
}

/** Counts of a box [x, y, width, height] (rleFrBbox). */
export function bboxCounts([bx, by, bw, bh], h, w) {
  const xs = bx;
  const xe = xs + bw;
  const ys = by;
  const ye = ys + bh;
  return polygonCounts([xs, ys, xs, ye, xe, ye, xe, ys], h, w);
}

/** RLE of a polygon given as [[x, y], ...] or of several (a list of such), merged as COCO does. */
export function polygonToRle(points, h, w) {
  const rings = Array.isArray(points[0]?.[0]) ? points : [points];
  const counts = merge(
    rings.map((ring) => polygonCounts(ring.flat(), h, w)),
    h,
    w,
  );
  return fromCounts(counts, h, w);
}

/** RLE of a box given by two corners [x0, y0, x1, y1], as frPyObjects does for [x0, y0, x1 - x0, y1 - y0]. */
export function boxToRle([x0, y0, x1, y1], h, w) {
  return fromCounts(bboxCounts([x0, y0, x1 - x0, y1 - y0], h, w), h, w);
}

// --- regions: the part of a mask inside its bounding box -----------------------------------------

/** Counts of a whole h × w mask holding a row-major bitmap (bw × bh) at (bx, by); the bitmap must lie
 * inside the image. Costs the bitmap's area, not the image's. */
export function countsFromRegion(bitmap, bx, by, bw, bh, h, w) {
  const counts = [];
  let previous = 0;
  let run = 0;
  const push = (value, n) => {
    if (n <= 0) return;
    if (value !== previous) {
      counts.push(run);
      run = 0;
      previous = value;
    }
    run += n;
  };
  push(0, bx * h);
  for (let x = 0; x < bw; x++) {
    push(0, by);
    for (let y = 0; y < bh; y++) push(bitmap[y * bw + x] ? 1 : 0, 1);
    push(0, h - by - bh);
  }
  push(0, (w - bx - bw) * h);
  counts.push(run);
  return Uint32Array.from(counts);
}

/** The set pixels of counts as a region {x, y, width, height, bitmap (row-major)}; null when empty.
 * Costs the runs plus the set pixels, not the whole image. */
export function regionFromCounts(counts, h, w) {
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  let at = 0;
  for (let j = 0; j < counts.length; j++) {
    const n = counts[j];
    if (j % 2 === 1 && n > 0) {
      const first = at;
      const last = at + n - 1;
      const cs = Math.floor(first / h);
      const ce = Math.floor(last / h);
      x0 = Math.min(x0, cs);
      x1 = Math.max(x1, ce);
      if (cs === ce) {
        y0 = Math.min(y0, first - cs * h);
        y1 = Math.max(y1, last - ce * h);
      } else {
        y0 = 0;
        y1 = h - 1;
      }
    }
    at += n;
  }
  if (x1 < 0) return null;
  const width = x1 - x0 + 1;
  const height = y1 - y0 + 1;
  const bitmap = new Uint8Array(width * height);
  at = 0;
  for (let j = 0; j < counts.length; j++) {
    const n = counts[j];
    if (j % 2 === 1) {
      for (let i = at, end = at + n; i < end; ) {
        const column = Math.floor(i / h);
        const row = i - column * h;
        const stop = Math.min(end, (column + 1) * h);
        const base = (row - y0) * width + (column - x0);
        for (let r = 0, len = stop - i; r < len; r++) bitmap[base + r * width] = 1;
        i = stop;
      }
    }
    at += n;
  }
  return { x: x0, y: y0, width, height, bitmap };
}

// --- brush strokes ------------------------------------------------------------------------------------

/** The pixels a brush stroke covers, as a region clipped to the image (null when it misses the image).
 *
 * The rule, so that anyone can recompute a stroke from the stored points: pixel (col, row) is painted
 * when its centre (col + 0.5, row + 0.5) lies within size / 2 of the stroke's polyline (a single point
 * paints a disc). */
export function brushStrokeRegion(points, size, h, w) {
  const radius = size / 2;
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (const [px, py] of points) {
    minX = Math.min(minX, px);
    minY = Math.min(minY, py);
    maxX = Math.max(maxX, px);
    maxY = Math.max(maxY, py);
  }
  const x0 = Math.max(0, Math.floor(minX - radius));
  const y0 = Math.max(0, Math.floor(minY - radius));
  const x1 = Math.min(w - 1, Math.ceil(maxX + radius));
  const y1 = Math.min(h - 1, Math.ceil(maxY + radius));
  if (x1 < x0 || y1 < y0) return null;
  const width = x1 - x0 + 1;
  const height = y1 - y0 + 1;
  const bitmap = new Uint8Array(width * height);
  const r2 = radius * radius;
  const segments = points.length === 1 ? [[points[0], points[0]]] : points.slice(1).map((p, i) => [points[i], p]);
  for (const [[ax, ay], [bx, by]] of segments) {
    const sx0 = Math.max(x0, Math.floor(Math.min(ax, bx) - radius));
    const sy0 = Math.max(y0, Math.floor(Math.min(ay, by) - radius));
    const sx1 = Math.min(x1, Math.ceil(Math.max(ax, bx) + radius));
    const sy1 = Math.min(y1, Math.ceil(Math.max(ay, by) + radius));
    const dx = bx - ax;
    const dy = by - ay;
    const length2 = dx * dx + dy * dy;
    for (let row = sy0; row <= sy1; row++) {
      const cy = row + 0.5;
      for (let col = sx0; col <= sx1; col++) {
        const cx = col + 0.5;
        let t = length2 ? ((cx - ax) * dx + (cy - ay) * dy) / length2 : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const ex = cx - (ax + t * dx);
        const ey = cy - (ay + t * dy);
        if (ex * ex + ey * ey <= r2) bitmap[(row - y0) * width + (col - x0)] = 1;
      }
    }
  }
  return { x: x0, y: y0, width, height, bitmap };
}

/** Counts of `counts` with a brush stroke painted (mode "paint") or erased (mode "erase"). */
export function applyStroke(counts, stroke, h, w) {
  const region = brushStrokeRegion(stroke.points, stroke.size, h, w);
  if (!region) return counts;
  const strokeCounts = countsFromRegion(region.bitmap, region.x, region.y, region.width, region.height, h, w);
  if (stroke.mode === "erase") return merge([counts, invert(strokeCounts)], h, w, true);
  return merge([counts, strokeCounts], h, w, false);
}

export function emptyCounts(h, w) {
  return Uint32Array.of(h * w);
}
