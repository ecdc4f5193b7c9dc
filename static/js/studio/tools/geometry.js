// How drawn geometry becomes a mask, shared by the tools.
//
// `drawn` records how an object was made, in image pixels, so the mask can be made again from it:
//   {tool: "polygon", points: [[x, y], ...]}        rasterised as pycocotools frPyObjects does
//   {tool: "box", box: [x0, y0, x1, y1]}            the same, for the box [x0, y0, x1 - x0, y1 - y0]
//   {tool: "brush"}                                 starts empty
// followed by `strokes`: [{mode: "paint" | "erase", size, points: [[x, y], ...]}, ...] applied in order
// (rle.js brushStrokeRegion has the rule). Coordinates are rounded to hundredths of a pixel before
// anything is rasterised, so the stored numbers are exactly the ones the mask was made from.

import { applyStroke, bboxCounts, emptyCounts, merge, polygonCounts } from "../rle.js";

export const round = (value) => Math.round(value * 100) / 100;

export const roundPoint = ([x, y]) => [round(x), round(y)];

/** Counts of the drawn base shape (without strokes); null when it has none (a model's mask). */
export function baseCounts(drawn, h, w) {
  if (drawn?.tool === "polygon" && Array.isArray(drawn.points) && drawn.points.length >= 3) {
    return merge([polygonCounts(drawn.points.flat(), h, w)], h, w);
  }
  if (drawn?.tool === "box" && Array.isArray(drawn.box) && drawn.box.length === 4) {
    const [x0, y0, x1, y1] = drawn.box;
    return bboxCounts([x0, y0, x1 - x0, y1 - y0], h, w);
  }
  if (drawn?.tool === "brush") return emptyCounts(h, w);
  return null;
}

/** Counts made again from `drawn` (base shape, then strokes); null when drawn cannot make them. */
export function countsFromDrawn(drawn, h, w) {
  let counts = baseCounts(drawn, h, w);
  if (!counts) return null;
  for (const stroke of drawn.strokes || []) counts = applyStroke(counts, stroke, h, w);
  return counts;
}

export function clampToImage([x, y], w, h) {
  return [Math.min(w, Math.max(0, x)), Math.min(h, Math.max(0, y))];
}

/** The polygon of an object that can be edited by dragging its vertices, or null. */
export function editablePolygon(object) {
  const drawn = object?.drawn;
  return drawn?.tool === "polygon" && Array.isArray(drawn.points) && drawn.points.length >= 3 ? drawn.points : null;
}
