// A video's frames as images: loaded ahead of the playhead, a few at a time, decoded before they
// are handed out, and kept in a cache of bounded size (least recently used dropped first).
//
// `want(urls)` says what is needed, most urgent first; it replaces what was asked before, so a
// jump along the timeline stops loading the frames around the old position. `get(url)` is the
// decoded image, or null while it is not there. A "load" event (detail: the URL) says one arrived.

const LIMIT = 240; // images kept
const PARALLEL = 6; // loads at once (what a browser runs per host over HTTP/1.1)

export class FrameLoader extends EventTarget {
  constructor({ limit = LIMIT, parallel = PARALLEL } = {}) {
    super();
    this.limit = limit;
    this.parallel = parallel;
    this.entries = new Map(); // url -> {image, state: "loading" | "loaded" | "failed", used}
    this.queue = [];
    this.wanted = new Set();
    this.loading = 0;
    this.clock = 0;
  }

  /** The decoded image at `url`, or null while it is loading (or if it failed). */
  get(url) {
    const entry = this.entries.get(url);
    if (!entry || entry.state !== "loaded") return null;
    entry.used = ++this.clock;
    return entry.image;
  }

  failed(url) {
    return this.entries.get(url)?.state === "failed";
  }

  /** Load these (most urgent first), forgetting what was asked before and is not started yet. */
  want(urls) {
    this.wanted = new Set(urls);
    this.queue = urls.filter((url) => !this.entries.has(url));
    this._pump();
  }

  _pump() {
    while (this.loading < this.parallel && this.queue.length) this._load(this.queue.shift());
  }

  _load(url) {
    if (this.entries.has(url)) return;
    const image = new Image();
    image.decoding = "async";
    const entry = { image, state: "loading", used: ++this.clock };
    this.entries.set(url, entry);
    this.loading++;
    const settle = (state) => {
      entry.state = state;
      this.loading--;
      this._evict();
      this._pump();
      this.dispatchEvent(new CustomEvent("load", { detail: url }));
    };
    image.addEventListener("load", () => {
      // Decoded before it is drawn, so playback never waits on a decode.
      image.decode().then(
        () => settle("loaded"),
        () => settle("loaded"),
      );
    });
    image.addEventListener("error", () => settle("failed"));
    image.src = url;
  }

  _evict() {
    if (this.entries.size <= this.limit) return;
    const old = [...this.entries.entries()]
      .filter(([url, entry]) => entry.state !== "loading" && !this.wanted.has(url))
      .sort((a, b) => a[1].used - b[1].used);
    for (const [url] of old.slice(0, this.entries.size - this.limit)) this.entries.delete(url);
  }
}
