"""The scripts bench/studio_canvas.py runs in the page: clocks on the studio socket and its frames,
the moves of a stroke and an undo, and the reference page's bare decode + putImageData."""

# The running Studio of the page (its module, by the URL the page loaded it from).
STUDIO = "import(document.querySelector('script[type=module][src*=\"js/studio/studio.\"]').src).then((m) => m.ready)"


# --- in the browser -------------------------------------------------------------------------------------

# Notes when the page's studio socket opened and when the item's annotations arrived on it (the
# first "annotations" reply), before the studio's own listener reads them.
SOCKET_CLOCK = """(() => {
  const Native = window.WebSocket;
  const clock = (window.benchSocket = {});
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("open", () => { clock.open ??= performance.now(); });
      this.addEventListener("message", (event) => {
        if (clock.listed == null && typeof event.data === "string" && event.data.includes('"type": "annotations"')) {
          clock.listed = performance.now();
        }
      });
    }
  };
})();"""

# Times every frame the viewer draws (start and duration, ms), for the frames during a stroke.
INSTALL = f"""() => {STUDIO}.then((s) => {{
  const frames = [];
  const render = s.viewer.render.bind(s.viewer);
  s.viewer.render = () => {{
    const start = performance.now();
    render();
    frames.push([start, performance.now() - start]);
  }};
  window.benchFrames = frames;
  return {{
    transport: s.store.transport.kind,
    objects: s.store.ordered().length,
    sprites: s.masks.sprites.size,
    canvas: [Math.round(s.viewer.viewWidth), Math.round(s.viewer.viewHeight)],
    scale: s.viewer.scale,
  }};
}})"""

# The mask layer alone, as the first frame draws it (cold: every sprite decoded) and as every later
# frame does (warm); a one-pixel read makes the canvas finish drawing before the clock stops.
MASK_LAYER = f"""(runs) => {STUDIO}.then((s) => {{
  const v = s.viewer;
  const ctx = v.ctx;
  const dpr = v.canvas.width / Math.max(1, v.viewWidth);
  const pass = (cold) => {{
    if (cold) s.masks.sprites.clear();
    ctx.save();
    ctx.setTransform(dpr * v.scale, 0, 0, dpr * v.scale, dpr * v.x, dpr * v.y);
    const start = performance.now();
    s.masks.draw(ctx);
    ctx.getImageData(0, 0, 1, 1);
    const took = performance.now() - start;
    ctx.restore();
    return took;
  }};
  const cold = [];
  const warm = [];
  for (let i = 0; i < runs; i++) {{
    cold.push(pass(true));
    warm.push(pass(false));
  }}
  v.requestRender();
  return {{ cold, warm, sprites: s.masks.sprites.size }};
}})"""

# Objects to paint on: the largest ones, spread over the list, each with a point well inside it
# (client coordinates, whole pixels) where a stroke starts.
TARGETS = f"""(count) => {STUDIO}.then((s) => {{
  const rect = s.viewer.canvas.getBoundingClientRect();
  const found = [];
  const objects = [...s.store.ordered()].sort((a, b) => b.key - a.key);
  const large = objects.filter((o) => {{ const b = s.masks.boxOf(o); return b && b[2] >= 120 && b[3] >= 120; }});
  const step = Math.max(1, Math.floor(large.length / count));
  for (let i = 0; found.length < count && i < large.length; i += step) {{
    const o = large[i];
    const sp = s.masks.spriteOf(o);
    const row = Math.floor(sp.height / 2);
    let best = null;
    let run = 0;
    for (let col = 0; col <= sp.width; col++) {{
      if (col < sp.width && sp.bitmap[row * sp.width + col]) run++;
      else {{
        if (run && (!best || run > best[1])) best = [col - run, run];
        run = 0;
      }}
    }}
    if (!best) continue;
    const [dx, dy] = s.viewer.toDisplay(sp.x + best[0] + best[1] / 2, sp.y + row + 0.5);
    const x = Math.round(rect.left + dx);
    const y = Math.round(rect.top + dy);
    if (!s.masks.contains(o, ...s.viewer.toImage(x, y))) continue;
    found.push({{ key: o.key, id: o.id, x, y }});
  }}
  return found;
}})"""

# Arms the clocks for one stroke (pointerdown … pointerup → next frame → acknowledged) or one undo
# (keydown → next frame → acknowledged). Listeners on window in the capture phase run before the
# studio's own; event time stamps include any wait for the page's main thread.
ARM = f"""(kind) => {STUDIO}.then((s) => {{
  window.benchDone = new Promise((resolve) => {{
    let down = null;
    const finish = (start) => {{
      s.viewer.addEventListener("rendered", () => {{
        const drawn = performance.now();
        s.store.whenIdle().then(() => resolve({{ down, start, drawn, saved: performance.now() }}));
      }}, {{ once: true }});
    }};
    if (kind === "stroke") {{
      window.addEventListener("pointerdown", (e) => {{ down = e.timeStamp; }}, {{ once: true, capture: true }});
      window.addEventListener("pointerup", (e) => finish(e.timeStamp), {{ once: true, capture: true }});
    }} else {{
      const key = (e) => {{
        if (!(e.ctrlKey && e.key.toLowerCase() === "z")) return;
        window.removeEventListener("keydown", key, true);
        finish(e.timeStamp);
      }};
      window.addEventListener("keydown", key, true);
    }}
  }});
}})"""

STATE = f"""(key) => {STUDIO}.then((s) => {{
  const o = s.store.get(key);
  return {{ version: o.version, state: o.state, counts: o.rle.counts, objects: s.store.ordered().length,
           problems: s.store.problems().length }};
}})"""

# The reference: a page with nothing but a canvas; every RLE decoded (compressed string → runs →
# pixels, column-major into a row-major RGBA buffer) and the buffer put on the canvas at once.
REFERENCE = """([rles, h, w, runs]) => {
  const canvas = document.getElementById("c");
  const ctx = canvas.getContext("2d");
  const colours = rles.map((r) => {
    const v = parseInt(r.colour.slice(1), 16);
    return (115 << 24) | ((v & 255) << 16) | (((v >> 8) & 255) << 8) | ((v >> 16) & 255); // ABGR, 45 %
  });
  const counts = (text) => {
    const out = [];
    let p = 0;
    while (p < text.length) {
      let x = 0, k = 0, more = 1;
      while (more) {
        const c = text.charCodeAt(p) - 48;
        x |= (c & 0x1f) << (5 * k);
        more = c & 0x20;
        p++;
        k++;
        if (!more && c & 0x10) x |= -1 << (5 * k);
      }
      if (out.length > 2) x += out[out.length - 2];
      out.push(x);
    }
    return out;
  };
  let painted = 0;
  const times = [];
  for (let run = 0; run < runs; run++) {
    const start = performance.now();
    const image = new ImageData(w, h);
    const pixels = new Uint32Array(image.data.buffer);
    for (let m = 0; m < rles.length; m++) {
      const runsOf = counts(rles[m].counts);
      const colour = colours[m];
      let at = 0;
      for (let j = 0; j < runsOf.length; j++) {
        const n = runsOf[j];
        if (j % 2 === 1) {
          let i = at;
          const end = at + n;
          while (i < end) {
            const col = Math.floor(i / h);
            const stop = Math.min(end, (col + 1) * h);
            for (let row = i - col * h, p = row * w + col; i < stop; i++, p += w) pixels[p] = colour;
          }
        }
        at += n;
      }
    }
    ctx.putImageData(image, 0, 0);
    ctx.getImageData(0, 0, 1, 1);
    times.push(performance.now() - start);
    if (run === 0) for (let i = 0; i < pixels.length; i++) if (pixels[i]) painted++;
  }
  return { times, painted };
}"""
