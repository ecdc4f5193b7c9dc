// The studio's timeline player on a video item: frame-accurate playback and editing.
//
// Frames are the extracted JPEGs (`<n>.jpg`, n from 0), never a <video> element, whose seeking is
// not frame-accurate. They are loaded around the playhead (frames.js) and shown on the studio's
// canvas. Playback runs on requestAnimationFrame at the item's frame rate and shows every frame
// (it waits for one that is late rather than skipping it).
//
// Paused, the store shows the current frame's objects (`store.setFrame`) and every studio tool
// edits them as on an image: a new object is saved with its frame and a track, the selected
// object's track when that track has nothing on this frame yet (adding the frame to it), a new
// track otherwise; the smart tool sends `video_prompt` with the frame. Playing, the canvas shows
// the server's previews of frames with objects (masks composited, annotation/video_previews.py)
// instead of decoding RLE, and the plain frames elsewhere.
//
// Controls: play / pause (button, Space when Space is not held to pan), the scrubber, the frame
// number, ← / → by one frame (Shift: 10), Home / End, M to mark a frame for re-segmenting. The
// strip and the track view (tracks.js) and the propagation controls (propagation.js) hang off here.

import { FrameLoader } from "./frames.js";
import { PropagationPanel } from "./propagation.js";
import { TrackPlots, TrackStrip, tracksOf } from "./tracks.js";

const AHEAD = 8; // frames loaded ahead of a paused playhead
const BEHIND = 3;
const AHEAD_SECONDS = 2; // of playback loaded ahead

const $ = (selector, root = document) => root.querySelector(selector);

/** Where Space means something else (typing, pressing a button); the scrubber takes it too. */
function takesSpace(target) {
  const fields = "input:not([type=range]), textarea, select, button, a[href], [contenteditable]";
  return target instanceof HTMLElement && target.matches(fields);
}

/** A short, stable text for a list of (id, version, label): a preview URL changes when it does. */
function stamp(objects) {
  let hash = 0x811c9dc5;
  for (const object of objects) {
    for (const char of `${object.id}.${object.version}.${object.label};`) {
      hash ^= char.charCodeAt(0);
      hash = Math.imul(hash, 0x01000193) >>> 0;
    }
  }
  return hash.toString(36);
}

export class VideoTimeline extends EventTarget {
  constructor(studio, data, root) {
    super();
    this.studio = studio;
    this.data = data;
    this.root = root;
    this.count = Math.max(0, data.frameCount || 0);
    this.fps = data.fps > 0 ? data.fps : 25;
    this.frame = 0;
    this.playing = false;
    this.track = null; // the selected track: new objects on a frame it lacks join it
    this.marked = new Set(); // frames marked for re-segmenting
    this.frames = new FrameLoader();
    this.shownUrl = null;
    this.clock = null; // {frame, time}: when playback showed which frame
    this.spaceDown = false;
    this.panned = false;
    this._dirty = true;
    this._byFrame = new Map();
    this._redraw = 0;
    this.store = null;
  }

  get ready() {
    return Boolean(this.data.ready) && this.count > 0;
  }

  // --- start ----------------------------------------------------------------------------------------

  /** Wire the controls and load the first frames (before the annotations are there). */
  begin() {
    const root = this.root;
    this.playButton = $("#timeline-play", root);
    this.scrubber = $("#timeline-scrubber", root);
    this.frameInput = $("#timeline-frame", root);
    this.timeText = $("#timeline-time", root);
    if (!this.ready) {
      for (const control of root.querySelectorAll("button, input, select")) control.disabled = true;
      const failed = this.data.state === "failed";
      const why = failed ? this.data.stateDetail || "frame extraction failed" : "its frames are being extracted";
      this.studio.hint(`This video cannot be shown yet: ${why}. Reload the page later.`);
      return;
    }
    this.playButton.addEventListener("click", () => this.toggle());
    $("#timeline-previous", root).addEventListener("click", (event) => this.step(event.shiftKey ? -10 : -1));
    $("#timeline-next", root).addEventListener("click", (event) => this.step(event.shiftKey ? 10 : 1));
    this.scrubber.addEventListener("input", () => this.seek(Number(this.scrubber.value)));
    this.frameInput.addEventListener("change", () => {
      const value = Number.parseInt(this.frameInput.value, 10);
      if (Number.isNaN(value)) this.frameInput.value = String(this.frame);
      else this.seek(value);
    });
    $("#timeline-new-track", root).addEventListener("click", () => {
      this.studio.select(null);
      this.studio.hint("The next object you draw starts a new track.");
    });
    this.frames.addEventListener("load", (event) => this._loaded(event.detail));
    this.studio.viewer.canvas.addEventListener("pointerdown", () => this.pause(), { capture: true });
    this._wireSpace();
    this.seek(0, { force: true });
  }

  /** The store is there: follow its objects (strip, track view, previews) and offer propagation. */
  attach(store) {
    this.store = store;
    const studio = this.studio;
    const nameOf = (id) => studio.labels.get(id)?.name || "?";
    const colourOf = (id) => studio.colourOf(id);
    this.strip = new TrackStrip($("#timeline-strip", this.root), {
      count: this.count,
      colourOf,
      nameOf,
      onPick: (frame, event) => this._stripClick(frame, event),
    });
    this.plots = new TrackPlots($("#track-list"), {
      count: this.count,
      height: studio.data.height,
      width: studio.data.width,
      colourOf,
      nameOf,
      onPick: (frame) => {
        this.pause();
        this.seek(frame);
      },
      onSelect: (track) => this.selectTrack(track),
    });
    this.propagation = new PropagationPanel(this, $("#propagation", this.root));
    store.addEventListener("change", () => {
      this._dirty = true;
      this._scheduleRedraw();
    });
    store.addEventListener("status", () => this.propagation.buttons());
    this._scheduleRedraw();
    this._masks();
  }

  /** Hear a transport's run events (called for each transport the page gets). */
  listen(transport) {
    transport.onEvent((message) => {
      if (message.type === "run" || message.type === "video_frame" || message.type === "error") {
        this.propagation?.event(message);
      }
    });
    this.propagation?.buttons();
  }

  // --- the objects per frame ------------------------------------------------------------------------

  _index() {
    if (this._dirty && this.store) {
      this._byFrame = new Map();
      for (const object of this.store.all()) {
        if (object.frame == null) continue;
        if (!this._byFrame.has(object.frame)) this._byFrame.set(object.frame, []);
        this._byFrame.get(object.frame).push(object);
      }
      this._dirty = false;
    }
    return this._byFrame;
  }

  /** The saved objects on a frame (what the server's preview draws). */
  savedOn(frame) {
    return (this._index().get(frame) || []).filter((object) => object.id != null);
  }

  frameUrl(frame) {
    return this.data.frameUrl.replace("{n}", String(frame));
  }

  previewUrl(frame) {
    return `${this.data.previewUrl.replace("{n}", String(frame))}?v=${stamp(this.savedOn(frame))}`;
  }

  /** What the canvas shows for a frame: its preview while playing if it has objects, else the frame. */
  sourceOf(frame, playing = this.playing) {
    return playing && this.savedOn(frame).length ? this.previewUrl(frame) : this.frameUrl(frame);
  }

  // --- moving along ---------------------------------------------------------------------------------

  clamp(frame) {
    return Math.min(this.count - 1, Math.max(0, Math.round(frame)));
  }

  step(by) {
    this.pause();
    this.seek(this.frame + by);
  }

  /** Show frame `frame`; paused, its objects become the ones the tools edit. Playing, a jump
   * (the scrubber) goes on playing from there. */
  seek(frame, { force = false, ticked = false } = {}) {
    if (!this.ready) return;
    const target = this.clamp(frame);
    if (target === this.frame && !force) return;
    this.frame = target;
    if (this.playing && !ticked) this.clock = { frame: target, time: performance.now() };
    if (!this.playing) this._editFrame();
    this._show();
    this._controls();
    this._preload();
    this.dispatchEvent(new Event("frame"));
  }

  /** A propagation run finished frame `frame`: go there, unless the video plays or the person is
   * in the middle of drawing (a smart prompt's object is finished by moving on, as by Esc). */
  follow(frame) {
    const tool = this.studio.tool;
    if (this.playing || (tool?.busy && tool.name !== "smart")) return;
    this.seek(frame);
  }

  _editFrame() {
    this.studio.tool?.cancel?.();
    if (!this.store) return;
    this.store.setFrame(this.frame);
    if (this.track != null) {
      const object = this.store.ordered().find((o) => o.track === this.track);
      this.studio.select(object ? object.key : null, { keepTrack: true });
    }
  }

  toggle() {
    if (this.playing) this.pause();
    else this.play();
  }

  play() {
    if (!this.ready || this.playing || this.count < 2) return;
    if (this.frame >= this.count - 1) this.seek(0);
    this.studio.tool?.cancel?.();
    this.playing = true;
    this.clock = { frame: this.frame, time: performance.now() };
    this._show();
    this._controls();
    this._preload();
    requestAnimationFrame((now) => this._tick(now));
  }

  pause() {
    if (!this.playing) return;
    this.playing = false;
    this.clock = null;
    this._editFrame();
    this._show();
    this._controls();
    this._preload();
  }

  _tick(now) {
    if (!this.playing) return;
    const due = this.clock.time + ((this.frame + 1 - this.clock.frame) * 1000) / this.fps;
    if (now >= due) {
      const next = this.frame + 1;
      if (next >= this.count) {
        this.pause();
        return;
      }
      const url = this.sourceOf(next);
      if (this.frames.get(url) || this.frames.failed(url)) {
        // Late by more than a frame (a slow load): the clock starts again from here.
        if (now - due > 1000 / this.fps) this.clock = { frame: next, time: now };
        this.seek(next, { ticked: true });
      } else {
        this._preload();
      }
    }
    requestAnimationFrame((time) => this._tick(time));
  }

  // --- drawing --------------------------------------------------------------------------------------

  _show() {
    const url = this.sourceOf(this.frame);
    this.wanted = url;
    const image = this.frames.get(url);
    if (image) this._apply(url, image);
    else if (this.frames.failed(url)) this.studio.hint(`Frame ${this.frame} could not be loaded.`);
    else this.frames.want([url, ...this._around()]);
    this._masks();
  }

  _loaded(url) {
    if (url !== this.wanted) return;
    const image = this.frames.get(url);
    if (image) this._apply(url, image);
    else this.studio.hint(`Frame ${this.frame} could not be loaded.`);
  }

  _apply(url, image) {
    this.shownUrl = url;
    this.studio.root.dataset.frame = String(this.frame);
    this.studio.viewer.setImage(image);
    this._masks();
  }

  /** Masks from RLE only on the paused frame's own picture (a preview has them drawn in already). */
  _masks() {
    const masks = this.studio.masks;
    if (!masks) return;
    const suspended = this.playing || this.shownUrl !== this.frameUrl(this.frame);
    if (masks.suspended !== suspended) {
      masks.suspended = suspended;
      this.studio.viewer.requestRender();
    }
  }

  _around() {
    const urls = [];
    if (this.playing) {
      const ahead = Math.ceil(this.fps * AHEAD_SECONDS);
      for (let f = this.frame + 1; f <= Math.min(this.count - 1, this.frame + ahead); f++) urls.push(this.sourceOf(f));
    } else {
      for (let d = 1; d <= AHEAD; d++) {
        if (this.frame + d < this.count) urls.push(this.frameUrl(this.frame + d));
        if (d <= BEHIND && this.frame - d >= 0) urls.push(this.frameUrl(this.frame - d));
      }
    }
    return urls;
  }

  _preload() {
    const current = this.sourceOf(this.frame);
    this.frames.want([current, ...this._around()]);
  }

  _controls() {
    const last = this.count - 1;
    this.scrubber.max = String(last);
    this.scrubber.value = String(this.frame);
    this.scrubber.setAttribute("aria-valuetext", `Frame ${this.frame} of ${last}`);
    if (document.activeElement !== this.frameInput) this.frameInput.value = String(this.frame);
    this.timeText.textContent = `${(this.frame / this.fps).toFixed(2)} s`;
    this.playButton.textContent = this.playing ? "❚❚ Pause" : "▶ Play";
    this.playButton.setAttribute("aria-pressed", String(this.playing));
    this.root.dataset.playing = String(this.playing);
    this.strip?.at(this.frame);
    this.plots?.at(this.frame);
    const track = $("#timeline-track", this.root);
    track.textContent = this.track != null ? `New objects join track ${this.track}` : "New objects start a track";
    $("#timeline-new-track", this.root).hidden = this.track == null;
  }

  _scheduleRedraw() {
    if (this._redraw) return;
    this._redraw = requestAnimationFrame(() => {
      this._redraw = 0;
      const tracks = tracksOf(this.store.all());
      this.strip.update(tracks, this.marked);
      this.plots.update(tracks, this.track);
      $("#track-empty").hidden = tracks.length > 0;
      if (this.ready) this._controls();
      this.propagation.buttons();
    });
  }

  // --- tracks ---------------------------------------------------------------------------------------

  /** The studio selected an object (or none): its track is the one new objects join. */
  selected(object, keepTrack) {
    if (!keepTrack) this.track = object?.track ?? null;
    if (this.store) this._scheduleRedraw();
  }

  selectTrack(track) {
    this.pause();
    this.track = track;
    const object = this.store.ordered().find((o) => o.track === track && track != null);
    if (object) this.studio.select(object.key, { keepTrack: true });
    else {
      const frames = [...(this._index().entries())].filter(([, objects]) => objects.some((o) => o.track === track));
      if (frames.length) {
        // Go to the track's frame nearest to the playhead.
        frames.sort((a, b) => Math.abs(a[0] - this.frame) - Math.abs(b[0] - this.frame));
        this.seek(frames[0][0]);
      }
    }
    this._scheduleRedraw();
  }

  /** Frame, track and label of a new object on this frame. */
  placeNew(fields) {
    const joining = this.joinsTrack();
    const member = joining ? this.store.all().find((o) => o.track === this.track) : null;
    const track = joining ? this.track : this.nextTrack();
    return { ...fields, label: member ? member.label : fields.label, frame: this.frame, track };
  }

  /** Whether a new object here joins the selected track (which has nothing on this frame yet). */
  joinsTrack() {
    if (this.track == null || !this.store) return false;
    return !this.store.ordered().some((o) => o.track === this.track);
  }

  nextTrack() {
    let top = 0;
    for (const object of this.store.objects.values()) {
      if (object.track != null && object.track > top) top = object.track;
    }
    return top + 1;
  }

  /** The smart tool's prompt as a `video_prompt` on this frame: an object it refines keeps its
   * track; a new one joins the selected track, or gets a new one from the server. */
  async prompt(message, object) {
    let extra;
    if (object) extra = { track: object.track ?? null };
    else {
      const joining = this.joinsTrack();
      const member = joining ? this.store.all().find((o) => o.track === this.track) : null;
      extra = { track: joining ? this.track : null, label_id: member ? member.label : message.label_id };
    }
    const frame = this.frame;
    const reply = await this.store.transport.videoPrompt({ ...message, ...extra, frame });
    return { ...reply, frame: reply.frame ?? frame };
  }

  /** Show the frame of an object (undo and redo may change one on another frame). */
  reveal(key) {
    const object = this.store?.get(key);
    if (object?.frame != null && object.frame !== this.frame) {
      this.pause();
      this.seek(object.frame);
    }
  }

  // --- marks and keys -------------------------------------------------------------------------------

  toggleMark(frame = this.frame) {
    if (this.marked.has(frame)) this.marked.delete(frame);
    else this.marked.add(frame);
    this._scheduleRedraw();
  }

  _stripClick(frame, event) {
    if (event.ctrlKey || event.metaKey) this.toggleMark(frame);
    else if (event.shiftKey) {
      const [from, to] = [Math.min(frame, this.frame), Math.max(frame, this.frame)];
      for (let f = from; f <= to; f++) this.marked.add(f);
      this._scheduleRedraw();
    } else {
      this.pause();
      this.seek(frame);
    }
  }

  /** The studio's keydown, for the timeline's keys; true when it was one. */
  key(event) {
    if (!this.ready) return false;
    const by = event.shiftKey ? 10 : 1;
    if (event.key === "ArrowLeft") this.step(-by);
    else if (event.key === "ArrowRight") this.step(by);
    else if (event.key === "Home") {
      this.pause();
      this.seek(0);
    } else if (event.key === "End") {
      this.pause();
      this.seek(this.count - 1);
    } else if (event.key === "m" || event.key === "M") this.toggleMark();
    else return false;
    return true;
  }

  /** Space alone plays or pauses; Space held while dragging pans (the viewer's), and does not. */
  _wireSpace() {
    this.studio.viewer.addEventListener("view", () => {
      if (this.spaceDown) this.panned = true;
    });
    window.addEventListener("keydown", (event) => {
      if (event.code !== "Space" || event.repeat || takesSpace(event.target)) return;
      if ($("#studio-help").open) return;
      this.spaceDown = true;
      this.panned = false;
    });
    window.addEventListener("keyup", (event) => {
      if (event.code !== "Space" || !this.spaceDown) return;
      this.spaceDown = false;
      if (!this.panned) this.toggle();
    });
    window.addEventListener("blur", () => {
      this.spaceDown = false;
    });
  }
}
