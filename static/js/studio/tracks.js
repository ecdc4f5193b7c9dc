// A video's tracks (one object across frames: its annotations sharing a `track` number) as the
// timeline shows them: the strip under the scrubber, one row per track marking the frames that
// have a mask in the label's colour (plus a row of the frames marked for re-segmenting), and the
// track view, a small SVG plot per track of the mask's area and its box centre (x, y) over the
// frames with a line at the playhead.
//
// Both redraw from the store (the item's objects on every frame); the playhead moves without a
// redraw. Each row and plot says in `data-frames` which frames it marks.

import { area, bbox } from "./rle.js";

const SVG = "http://www.w3.org/2000/svg";
const ROW_HEIGHT = 8;

/** The store's objects grouped by track, in track order: [{track, label, frames: Map(frame -> object)}].
 * Objects without a track are grouped together under track null, last. */
export function tracksOf(objects) {
  const tracks = new Map();
  for (const object of objects) {
    if (object.frame == null) continue;
    const key = object.track ?? null;
    if (!tracks.has(key)) tracks.set(key, { track: key, label: object.label, frames: new Map() });
    tracks.get(key).frames.set(object.frame, object);
  }
  return [...tracks.values()].sort((a, b) => (a.track ?? Infinity) - (b.track ?? Infinity));
}

export function trackName(track, labelName) {
  return track.track == null ? `${labelName} · no track` : `${labelName} · track ${track.track}`;
}

function framesList(frames) {
  return [...frames].sort((a, b) => a - b).join(",");
}

// --- the strip -------------------------------------------------------------------------------------

export class TrackStrip {
  /** `root` holds the rows; `onPick(frame, event)` is called for a click on a row. */
  constructor(root, { count, colourOf, nameOf, onPick }) {
    this.root = root;
    this.count = Math.max(1, count);
    this.colourOf = colourOf;
    this.nameOf = nameOf;
    this.onPick = onPick;
    this.rows = root.querySelector(".strip-rows");
    this.playhead = root.querySelector(".strip-playhead");
    this.tracks = [];
    this.marked = new Set();
    this.frame = 0;
    root.addEventListener("click", (event) => {
      const row = event.target.closest(".strip-row");
      if (!row) return;
      const canvas = row.querySelector("canvas");
      const rect = canvas.getBoundingClientRect();
      const frame = Math.floor(((event.clientX - rect.left) / Math.max(1, rect.width)) * this.count);
      this.onPick(Math.min(this.count - 1, Math.max(0, frame)), event);
    });
    new ResizeObserver(() => this.draw()).observe(root);
  }

  update(tracks, marked) {
    this.tracks = tracks;
    this.marked = marked;
    this.draw();
  }

  /** Where the playhead line is (frame `frame` of the strip). */
  at(frame) {
    this.frame = frame;
    const rows = this.rows.getBoundingClientRect();
    const canvas = this.rows.querySelector("canvas");
    if (!canvas) return;
    const box = canvas.getBoundingClientRect();
    const x = box.left - rows.left + ((frame + 0.5) / this.count) * box.width;
    this.playhead.style.left = `${x}px`;
  }

  draw() {
    const wanted = [{ track: "marked", frames: this.marked, colour: "#ffb000", name: "Marked to re-segment" }];
    for (const track of this.tracks) {
      wanted.push({
        track: track.track == null ? "none" : String(track.track),
        frames: new Set(track.frames.keys()),
        colour: this.colourOf(track.label),
        name: trackName(track, this.nameOf(track.label)),
      });
    }
    const existing = new Map([...this.rows.children].map((row) => [row.dataset.track, row]));
    let previous = null;
    for (const want of wanted) {
      let row = existing.get(want.track);
      existing.delete(want.track);
      if (!row) row = this._row(want.track);
      this._fill(row, want);
      const place = previous ? previous.nextElementSibling : this.rows.firstElementChild;
      if (place !== row) this.rows.insertBefore(row, place);
      previous = row;
    }
    for (const row of existing.values()) row.remove();
    this.at(this.frame);
  }

  _row(track) {
    const row = document.createElement("div");
    row.className = "strip-row";
    row.dataset.track = track;
    const name = document.createElement("span");
    name.className = "strip-name";
    const canvas = document.createElement("canvas");
    canvas.height = ROW_HEIGHT;
    row.append(name, canvas);
    return row;
  }

  _fill(row, { frames, colour, name }) {
    const list = framesList(frames);
    row.dataset.frames = list;
    row.classList.toggle("marks", row.dataset.track === "marked");
    row.title = `${name}: ${frames.size} frame${frames.size === 1 ? "" : "s"}`;
    row.querySelector(".strip-name").textContent = name;
    const canvas = row.querySelector("canvas");
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.getBoundingClientRect().width * dpr));
    if (canvas.width !== width) canvas.width = width;
    canvas.height = Math.round(ROW_HEIGHT * dpr);
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = colour;
    const cell = canvas.width / this.count;
    for (const frame of frames) {
      ctx.fillRect(Math.floor(frame * cell), 0, Math.max(1, Math.ceil(cell - (cell > 3 ? 1 : 0))), canvas.height);
    }
  }
}

// --- the track view --------------------------------------------------------------------------------

const measures = new WeakMap(); // counts -> {area, cx, cy}

function measure(object, height, width) {
  let found = measures.get(object.counts);
  if (!found) {
    const [x, y, w, h] = bbox(object.counts, height, width);
    found = { area: area(object.counts), cx: x + w / 2, cy: y + h / 2 };
    measures.set(object.counts, found);
  }
  return found;
}

/** An SVG path through (frame, value) points, broken where a frame has no value. */
function pathOf(points) {
  let d = "";
  let last = null;
  for (const [frame, value] of points) {
    const x = frame + 0.5;
    const y = (100 * (1 - value)).toFixed(2);
    d += last === frame - 1 ? `L${x} ${y}` : `M${x} ${y}h0.01`;
    last = frame;
  }
  return d;
}

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  return element;
}

export class TrackPlots {
  /** `list` is the <ol> the plots go in; `onPick(frame)` seeks, `onSelect(track)` picks a track. */
  constructor(list, { count, height, width, colourOf, nameOf, onPick, onSelect }) {
    this.list = list;
    this.count = Math.max(1, count);
    this.height = height;
    this.width = width;
    this.colourOf = colourOf;
    this.nameOf = nameOf;
    this.onPick = onPick;
    this.onSelect = onSelect;
    this.frame = 0;
    this.selected = null;
    list.addEventListener("click", (event) => {
      const card = event.target.closest(".track-card");
      if (!card) return;
      const track = card.dataset.track === "none" ? null : Number(card.dataset.track);
      const svg = event.target.closest("svg");
      if (svg) {
        const rect = svg.getBoundingClientRect();
        const frame = Math.floor(((event.clientX - rect.left) / Math.max(1, rect.width)) * this.count);
        this.onPick(Math.min(this.count - 1, Math.max(0, frame)), track);
      } else if (event.target.closest(".track-pick")) this.onSelect(track);
    });
  }

  update(tracks, selected) {
    this.selected = selected;
    const existing = new Map([...this.list.children].map((card) => [card.dataset.track, card]));
    let previous = null;
    for (const track of tracks) {
      const key = track.track == null ? "none" : String(track.track);
      let card = existing.get(key);
      existing.delete(key);
      if (!card) card = this._card(key);
      this._fill(card, track);
      const place = previous ? previous.nextElementSibling : this.list.firstElementChild;
      if (place !== card) this.list.insertBefore(card, place);
      previous = card;
    }
    for (const card of existing.values()) card.remove();
    this.at(this.frame);
  }

  at(frame) {
    this.frame = frame;
    const x = String(frame + 0.5);
    for (const line of this.list.querySelectorAll(".plot-playhead")) {
      line.setAttribute("x1", x);
      line.setAttribute("x2", x);
    }
  }

  _card(key) {
    const card = document.createElement("li");
    card.className = "track-card";
    card.dataset.track = key;
    const pick = document.createElement("button");
    pick.type = "button";
    pick.className = "track-pick link";
    pick.innerHTML =
      '<span class="swatch"></span><span class="track-name"></span> <small class="track-frames muted"></small>';
    const svg = svgElement("svg", {
      viewBox: `0 0 ${this.count} 100`,
      preserveAspectRatio: "none",
      class: "track-plot",
      role: "img",
    });
    svg.append(
      svgElement("path", { class: "plot-area" }),
      svgElement("path", { class: "plot-x" }),
      svgElement("path", { class: "plot-y" }),
      svgElement("line", { class: "plot-playhead", y1: "0", y2: "100" }),
    );
    card.append(pick, svg);
    return card;
  }

  _fill(card, track) {
    const colour = this.colourOf(track.label);
    const name = trackName(track, this.nameOf(track.label));
    const frames = [...track.frames.keys()].sort((a, b) => a - b);
    card.dataset.frames = frames.join(",");
    card.classList.toggle("selected", track.track != null && track.track === this.selected);
    card.querySelector(".swatch").style.backgroundColor = colour;
    card.querySelector(".track-name").textContent = name;
    card.querySelector(".track-frames").textContent = `${frames.length} frame${frames.length === 1 ? "" : "s"}`;
    card.querySelector(".track-pick").title = `Select ${name}: new objects on other frames join it`;
    const values = frames.map((frame) => [frame, measure(track.frames.get(frame), this.height, this.width)]);
    const largest = Math.max(1, ...values.map(([, m]) => m.area));
    const svg = card.querySelector("svg");
    const area = svg.querySelector(".plot-area");
    area.setAttribute("d", pathOf(values.map(([frame, m]) => [frame, m.area / largest])));
    area.style.stroke = colour;
    svg.querySelector(".plot-x").setAttribute("d", pathOf(values.map(([frame, m]) => [frame, m.cx / this.width])));
    svg.querySelector(".plot-y").setAttribute("d", pathOf(values.map(([frame, m]) => [frame, m.cy / this.height])));
    const last = values.at(-1);
    svg.setAttribute(
      "aria-label",
      `${name}: mask area (largest ${largest} px) and box centre over ${frames.length} frames` +
        (last ? `; on frame ${last[0]} the centre is at (${Math.round(last[1].cx)}, ${Math.round(last[1].cy)})` : ""),
    );
  }
}
