// The item's objects, keyed, with versions, and the transport that persists them.
//
// Every change is written at once. Writes of one object go one after another (each carries the
// version the previous one returned); several quick changes to an object while a write is in
// flight become one write of its latest state. A stale version comes back as a `conflict` error
// carrying the stored annotation: the object is marked and the page offers to reload it or to
// reapply the local change.
//
// A transport is any object with:
//   kind                      "socket" or "rest"
//   list()                    -> Promise<payload[]>    the item's annotations, bottom to top
//   save(annotation)          -> Promise<payload>      {id: null|int, label, rle, drawn, answers, z_order, version}
//   remove(id, version)       -> Promise<void>
//   accept(id, version)       -> Promise<payload>      a pre-annotation taken as it is (no longer proposed)
//   acceptAll()               -> Promise<payload[]>    every pre-annotation of the item
//   prompt(message)           -> Promise<mask reply>   the smart tool: the model's mask, saved by the server
//                                                      (rejects over REST: prompts need the socket)
//   videoPrompt(message)      -> Promise<mask reply>   the same on a video frame (`video_prompt`)
//   propagate(message)        -> Promise<run reply>    a propagation run on a video (socket only)
//   stop(job)                                          ask a run to stop (its `run` frame says when)
//   onEvent(callback)         others' changes: {type: "annotation", annotation} | {type: "annotation_deleted", id};
//                             on a video also {type: "video_frame", …}, {type: "run", …} and errors
//                             that answer no pending request
//   onClose(callback)         the transport stopped working (the socket dropped)
//   close()
// Errors are TransportError {code, message, current}: code "conflict" (current: the stored payload),
// "invalid", "not_found", "forbidden", "too_large", "network", "unavailable".

import { countsFromString } from "./rle.js";

/** The annotation payload inside a `mask` reply (the object the prompt made or refined, as stored). */
export function maskPayload(reply) {
  return {
    id: reply.object_id,
    version: reply.version,
    label: reply.label_id,
    rle: reply.rle,
    drawn: reply.drawn || {},
    answers: reply.answers || {},
    z_order: reply.z_order ?? 0,
    frame: reply.frame ?? null,
    track: reply.track ?? null,
    source: "model",
    author: reply.author ?? null,
  };
}

export class TransportError extends Error {
  constructor(code, message, current = null) {
    super(message);
    this.code = code;
    this.current = current;
  }
}

// --- REST -------------------------------------------------------------------------------------------

function restMessage(body, status) {
  if (!body || typeof body !== "object") return `The server answered ${status}.`;
  if (typeof body.detail === "string") return body.detail;
  const parts = [];
  for (const [field, messages] of Object.entries(body)) {
    const text = Array.isArray(messages) ? messages.join(" ") : typeof messages === "string" ? messages : "";
    if (text) parts.push(field === "non_field_errors" ? text : `${field}: ${text}`);
  }
  return parts.join(" ") || `The server answered ${status}.`;
}

const STATUS_CODES = { 400: "invalid", 403: "forbidden", 404: "not_found", 409: "conflict", 413: "too_large" };
const KEEPALIVE_LIMIT = 60_000; // browsers cap keepalive bodies at 64 KiB in all
// Socket frames that answer no request: others' changes, and a video's propagation runs (an error
// for a request nobody waits for, such as a stop, is passed on too).
const EVENT_TYPES = new Set(["annotation", "annotation_deleted", "video_frame", "run", "error"]);

/** The annotation REST endpoints: GET / POST on the list, PATCH / DELETE (with version) on one. */
export class RestTransport {
  constructor({ url, csrfToken }) {
    this.kind = "rest";
    this.url = url;
    this.csrfToken = csrfToken;
  }

  async _request(method, url, body) {
    const text = body === undefined ? undefined : JSON.stringify(body);
    let response;
    try {
      response = await fetch(url, {
        method,
        credentials: "same-origin",
        headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": this.csrfToken },
        body: text,
        // A write still in flight when the tab closes is finished by the browser.
        keepalive: method !== "GET" && (text || "").length < KEEPALIVE_LIMIT,
      });
    } catch (error) {
      throw new TransportError("network", "The server cannot be reached; the change is kept and sent again.");
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const code = data?.code === "conflict" ? "conflict" : STATUS_CODES[response.status] || "network";
      throw new TransportError(code, restMessage(data, response.status), data?.current || null);
    }
    return data;
  }

  async list() {
    const all = [];
    let url = this.url;
    while (url) {
      const data = await this._request("GET", url);
      if (Array.isArray(data)) return data;
      all.push(...(data?.results || []));
      url = data?.next || null;
    }
    return all;
  }

  save(annotation) {
    const { id, version, ...fields } = annotation;
    if (id == null) return this._request("POST", this.url, fields);
    return this._request("PATCH", `${this.url}${id}/`, { ...fields, version });
  }

  remove(id, version) {
    return this._request("DELETE", `${this.url}${id}/?version=${encodeURIComponent(version)}`, { version });
  }

  prompt() {
    return Promise.reject(new TransportError("unavailable", "The smart tool needs the studio's live connection."));
  }

  videoPrompt() {
    return this.prompt();
  }

  propagate() {
    return Promise.reject(new TransportError("unavailable", "Propagation needs the studio's live connection."));
  }

  stop() {}

  accept(id, version) {
    return this._request("POST", `${this.url}${id}/accept/`, { version });
  }

  async acceptAll() {
    return (await this._request("POST", `${this.url}accept/`, {})).accepted;
  }

  onEvent() {}

  onClose() {}

  close() {}
}

// --- websocket ----------------------------------------------------------------------------------------

/** The studio socket, /ws/o/<org>/studio/<media_id>/: list, save and delete with request ids; what
 * others change on the item arrives as events. */
export class SocketTransport {
  constructor(socket) {
    this.kind = "socket";
    this.socket = socket;
    this.pending = new Map();
    this.nextId = 1;
    this.eventCallbacks = [];
    this.closeCallbacks = [];
    socket.addEventListener("message", (event) => this._message(event));
    socket.addEventListener("close", () => {
      for (const { reject } of this.pending.values()) {
        reject(new TransportError("network", "The live connection closed; the change is sent again."));
      }
      this.pending.clear();
      for (const callback of this.closeCallbacks) callback();
    });
  }

  _message(event) {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    const waiting = message.request_id != null ? this.pending.get(message.request_id) : null;
    if (waiting) {
      this.pending.delete(message.request_id);
      if (message.type === "error") {
        waiting.reject(new TransportError(message.code || "invalid", message.message || "Refused.", message.current));
      } else waiting.resolve(message);
      return;
    }
    if (EVENT_TYPES.has(message.type)) {
      for (const callback of this.eventCallbacks) callback(message);
    } else if (message.type === "mask" && message.object_id != null) {
      // A mask that came after its prompt had timed out: it was saved all the same, so show it.
      for (const callback of this.eventCallbacks) callback({ type: "annotation", annotation: maskPayload(message) });
    }
  }

  /** Send without waiting for an answer (what comes back arrives as events). */
  _post(message) {
    if (this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify({ ...message, request_id: `r${this.nextId++}` }));
    return true;
  }

  _send(message) {
    if (this.socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new TransportError("network", "The live connection is closed."));
    }
    const requestId = `r${this.nextId++}`;
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, { resolve, reject });
      this.socket.send(JSON.stringify({ ...message, request_id: requestId }));
    });
  }

  async list() {
    const reply = await this._send({ type: "list" });
    return reply.annotations;
  }

  async save(annotation) {
    const reply = await this._send({ type: "save", annotation });
    return reply.annotation;
  }

  async remove(id, version) {
    await this._send({ type: "delete", id, version });
  }

  prompt(message) {
    return this._send({ ...message, type: "prompt" });
  }

  videoPrompt(message) {
    return this._send({ ...message, type: "video_prompt" });
  }

  propagate(message) {
    return this._send({ ...message, type: "propagate" });
  }

  stop(job) {
    return this._post({ type: "stop", job });
  }

  async accept(id, version) {
    return (await this._send({ type: "accept", id, version })).annotation;
  }

  async acceptAll() {
    return (await this._send({ type: "accept", all: true })).annotations;
  }

  onEvent(callback) {
    this.eventCallbacks.push(callback);
  }

  onClose(callback) {
    this.closeCallbacks.push(callback);
  }

  close() {
    this.closeCallbacks = [];
    this.socket.close();
  }
}

/** The socket when it opens within `timeoutMs`, else `rest` (a refused handshake falls back at once;
 * the wait is for a slow server, which should not push a page onto REST for good). */
export function connectTransport({ socketPath, rest, timeoutMs = 8000 }) {
  if (!socketPath || typeof WebSocket === "undefined") return Promise.resolve(rest);
  return new Promise((resolve) => {
    let settled = false;
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${window.location.host}${socketPath}`);
    } catch {
      resolve(rest);
      return;
    }
    const done = (transport) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(transport);
    };
    const timer = setTimeout(() => {
      socket.close();
      done(rest);
    }, timeoutMs);
    socket.addEventListener("open", () => done(new SocketTransport(socket)));
    socket.addEventListener("error", () => done(rest));
    socket.addEventListener("close", () => done(rest));
  });
}

// --- the objects ---------------------------------------------------------------------------------------

const FIELDS = ["label", "rle", "drawn", "answers", "z_order"];
const VIDEO_FIELDS = [...FIELDS, "frame", "track"];
const RETRIES = 6;

function copy(value) {
  return value == null ? value : JSON.parse(JSON.stringify(value));
}

export class Store extends EventTarget {
  /** `frame`: null on an image; on a video the frame shown, whose objects `ordered()` gives (every
   * frame's objects are held, `all()`), and each object's frame and track are written with it. */
  constructor({ transport, rest = null, height, width, frame = null }) {
    super();
    this.transport = transport;
    this.frame = frame;
    this.fields = frame === null ? FIELDS : VIDEO_FIELDS;
    this.rest = rest; // for what the socket refuses as too large (REST takes larger bodies)
    this.height = height;
    this.width = width;
    this.objects = new Map(); // key -> object (deleted ones stay until their deletion is written)
    this.chains = new Map(); // key -> the promise of its last queued write
    this.inFlight = 0;
    this.nextKey = 1;
    this._ordered = null;
    this._wire(transport);
  }

  _wire(transport) {
    transport.onEvent((event) => this._remote(event));
  }

  setTransport(transport) {
    this.transport = transport;
    this._wire(transport);
    this._emit("status");
    // Whatever failed on the old transport goes again on the new one.
    for (const object of this.objects.values()) if (object.state === "unsaved") this._queue(object.key);
  }

  // --- reading ------------------------------------------------------------------------------------

  async load() {
    const payloads = await this.transport.list();
    for (const payload of payloads) this._adopt(payload);
    this._changed();
  }

  /** Objects drawn bottom to top (z_order, then id, new ones last); on a video, the shown frame's. */
  ordered() {
    if (!this._ordered) {
      this._ordered = [...this.objects.values()]
        .filter((o) => !o.deleted && (this.frame === null || o.frame === this.frame))
        .sort((a, b) => a.z_order - b.z_order || (a.id ?? Infinity) - (b.id ?? Infinity) || a.key - b.key);
    }
    return this._ordered;
  }

  /** Every object of the item, on every frame of a video. */
  all() {
    return [...this.objects.values()].filter((o) => !o.deleted);
  }

  /** Show another frame of a video: `ordered()` and everything drawn follow it. */
  setFrame(frame) {
    if (frame === this.frame) return;
    this.frame = frame;
    this._changed();
  }

  get(key) {
    const object = this.objects.get(key);
    return object && !object.deleted ? object : null;
  }

  byId(id) {
    for (const object of this.objects.values()) if (object.id === id) return object;
    return null;
  }

  /** The fields of an object that undo and redo restore; null when it does not exist. */
  snapshot(key) {
    const object = this.get(key);
    if (!object) return null;
    const snap = {};
    for (const field of this.fields) snap[field] = copy(object[field]);
    return snap;
  }

  topZ() {
    const all = this.ordered();
    return all.length ? all[all.length - 1].z_order : -1;
  }

  bottomZ() {
    const all = this.ordered();
    return all.length ? all[0].z_order : 0;
  }

  pendingCount() {
    let count = this.inFlight;
    for (const object of this.objects.values()) if (object.queued) count++;
    return count;
  }

  problems() {
    return [...this.objects.values()].filter((o) => o.state === "error" || o.state === "conflict");
  }

  /** Resolves once the writes queued for object `key` have been answered. */
  settled(key) {
    return (this.chains.get(key) || Promise.resolve()).catch(() => {});
  }

  /** Resolves once every queued write has been answered. */
  async whenIdle() {
    while (this.chains.size) await Promise.allSettled([...this.chains.values()]);
  }

  // --- local changes ------------------------------------------------------------------------------

  create(fields) {
    const key = this.nextKey++;
    const object = { key, id: null, version: null, hidden: false, deleted: false, state: "unsaved", source: "manual" };
    this._set(object, { z_order: this.topZ() + 1, answers: {}, drawn: {}, ...fields });
    this.objects.set(key, object);
    this._queue(key);
    this._changed();
    return key;
  }

  change(key, fields) {
    const object = this.get(key);
    if (!object) return;
    this._set(object, fields);
    object.state = "unsaved";
    this._queue(key);
    this._changed();
  }

  remove(key) {
    const object = this.get(key);
    if (!object) return;
    object.deleted = true;
    object.state = "unsaved";
    this._queue(key);
    this._changed();
  }

  /** An object the server has already stored (a smart prompt's mask is saved where the model ran):
   * taken as saved, nothing written back; returns its key. `key` is the object that was refined,
   * null for a new one. */
  applySaved(key, payload) {
    let object = key != null ? this.objects.get(key) : null;
    // The item's event for this object may have come first: keep one object per id.
    for (const other of [...this.objects.values()]) {
      if (other !== object && other.id === payload.id) {
        this.objects.delete(other.key);
        this.dispatchEvent(new CustomEvent("forget", { detail: other.key }));
      }
    }
    if (!object) object = this._adopt(payload);
    else if (payload.version > (object.version || 0)) {
      object.deleted = false;
      this._fromPayload(object, payload);
      object.state = "saved";
      object.message = "";
    }
    this._changed();
    return object.key;
  }

  /** Pre-annotations nobody has accepted or changed yet. */
  proposed() {
    return this.ordered().filter((object) => object.proposed);
  }

  /** Take a pre-annotation as it is; resolves once the server has it. */
  async accept(key) {
    const object = this.get(key);
    if (!object || !object.proposed || object.id == null) return;
    await this.settled(key);
    try {
      const payload = await this.transport.accept(object.id, object.version);
      this._fromPayload(object, payload);
      object.state = "saved";
      object.message = "";
    } catch (error) {
      this._failed(object, error);
    }
    this._changed();
  }

  /** Take every pre-annotation of the item as it is; resolves to how many were taken. */
  async acceptAll() {
    await this.whenIdle();
    const payloads = await this.transport.acceptAll();
    for (const payload of payloads) this._remote({ type: "annotation", annotation: payload });
    this._changed();
    return payloads.length;
  }

  /** Bring an object to `snap` (undo / redo): null deletes it; a deleted one comes back (a new id
   * when its deletion was already written). */
  restore(key, snap) {
    const object = this.objects.get(key);
    if (snap == null) {
      if (object && !object.deleted) this.remove(key);
      return;
    }
    if (object) {
      object.deleted = false;
      this._set(object, copy(snap));
      object.state = "unsaved";
      this._queue(key);
      this._changed();
    } else {
      const back = { key, id: null, version: null, hidden: false, deleted: false, state: "unsaved", source: "manual" };
      this._set(back, copy(snap));
      this.objects.set(key, back);
      this._queue(key);
      this._changed();
    }
  }

  setHidden(key, hidden) {
    const object = this.get(key);
    if (object) {
      object.hidden = hidden;
      this._changed();
    }
  }

  /** After a conflict: take the stored annotation (reload) or write ours over it (reapply). */
  resolve(key, how) {
    const object = this.objects.get(key);
    if (!object || !object.conflict) return;
    const current = object.conflict;
    object.conflict = null;
    object.message = "";
    object.version = current.version;
    if (how === "reload") {
      object.deleted = false;
      this._fromPayload(object, current);
      object.state = "saved";
      this._changed();
    } else {
      object.state = "unsaved";
      this._queue(key);
      this._changed();
    }
  }

  _set(object, fields) {
    for (const [name, value] of Object.entries(fields)) object[name] = value;
    if ("rle" in fields) object.counts = countsFromString(object.rle.counts);
  }

  _fromPayload(object, payload) {
    object.id = payload.id;
    object.version = payload.version;
    object.source = payload.source || "manual";
    object.proposed = Boolean(payload.proposed);
    object.author = payload.author ?? null;
    this._set(object, {
      label: payload.label,
      rle: payload.rle,
      drawn: payload.drawn || {},
      answers: payload.answers || {},
      z_order: payload.z_order ?? 0,
      frame: payload.frame ?? null,
      track: payload.track ?? null,
    });
  }

  _adopt(payload) {
    const key = this.nextKey++;
    const object = { key, hidden: false, deleted: false, state: "saved" };
    this._fromPayload(object, payload);
    this.objects.set(key, object);
    return object;
  }

  // --- writing ------------------------------------------------------------------------------------

  _queue(key) {
    const object = this.objects.get(key);
    if (!object || object.queued) return;
    object.queued = true;
    const previous = this.chains.get(key) || Promise.resolve();
    const chain = previous.then(() => this._flush(key));
    this.chains.set(key, chain);
    chain.finally(() => {
      if (this.chains.get(key) === chain) this.chains.delete(key);
    });
    this._emit("status");
  }

  async _flush(key) {
    const object = this.objects.get(key);
    if (!object) return;
    object.queued = false;
    if (object.state === "conflict" || object.state === "error") return; // waits for the person
    this.inFlight++;
    this._emit("status");
    const transport = object.viaRest && this.rest ? this.rest : this.transport;
    object.viaRest = false;
    try {
      if (object.deleted) {
        if (object.id != null) {
          await transport.remove(object.id, object.version);
          object.id = null;
          object.version = null;
        }
        if (object.deleted) {
          this.objects.delete(key);
          this.dispatchEvent(new CustomEvent("forget", { detail: key }));
        } else this._queue(key); // restored while its deletion was on the way: create it again
      } else {
        const sent = { id: object.id, version: object.version };
        for (const field of this.fields) sent[field] = object[field];
        const payload = await transport.save(sent);
        const changedSince = object.queued || object.deleted;
        // A write over REST comes back to this page's socket too, perhaps before this answer: keep
        // one object per id.
        for (const other of [...this.objects.values()]) {
          if (other !== object && other.id === payload.id) {
            this.objects.delete(other.key);
            this.dispatchEvent(new CustomEvent("forget", { detail: other.key }));
          }
        }
        object.id = payload.id;
        object.version = payload.version;
        object.author = payload.author ?? null;
        object.proposed = Boolean(payload.proposed); // a change makes a pre-annotation the person's
        if (!changedSince) {
          // The server's word on what it stored (answers of another label dropped, and so on).
          object.answers = payload.answers || {};
          object.z_order = payload.z_order ?? object.z_order;
          object.state = "saved";
        }
      }
      object.retries = 0;
      object.triedRest = false;
      object.message = "";
    } catch (error) {
      this._failed(object, error);
    } finally {
      this.inFlight--;
      this._changed();
    }
  }

  _failed(object, error) {
    const code = error instanceof TransportError ? error.code : "network";
    if (code === "conflict" && error.current) {
      object.state = "conflict";
      object.conflict = error.current;
      object.message = error.message;
      this.dispatchEvent(new CustomEvent("conflict", { detail: object.key }));
    } else if (code === "too_large" && this.rest && this.transport !== this.rest && !object.triedRest) {
      // The socket caps its messages; the same write goes over REST.
      object.triedRest = true;
      object.viaRest = true;
      object.state = "unsaved";
      this._queue(object.key);
    } else if (code === "network" && (object.retries || 0) < RETRIES) {
      object.retries = (object.retries || 0) + 1;
      object.state = "unsaved";
      object.message = error.message;
      setTimeout(() => this._queue(object.key), 500 * 2 ** object.retries);
    } else if (code === "not_found" && object.deleted) {
      this.objects.delete(object.key); // already gone: nothing left to delete
      this.dispatchEvent(new CustomEvent("forget", { detail: object.key }));
    } else {
      object.state = "error";
      object.message = error.message || "The change was refused.";
    }
  }

  // --- what others change -------------------------------------------------------------------------

  /** Catch up with the stored annotations (after the socket was down): newer versions are taken,
   * saved objects that are gone are dropped; local changes on their way are left alone. */
  sync(payloads) {
    const ids = new Set(payloads.map((payload) => payload.id));
    for (const payload of payloads) this._remote({ type: "annotation", annotation: payload });
    for (const object of [...this.objects.values()]) {
      if (object.id != null && !ids.has(object.id)) this._remote({ type: "annotation_deleted", id: object.id });
    }
  }

  _remote(event) {
    if (event.type !== "annotation" && event.type !== "annotation_deleted") return; // a run's progress and such
    if (event.type === "annotation") {
      const payload = event.annotation;
      const object = this.byId(payload.id);
      if (!object) this._adopt(payload);
      else if (payload.version > (object.version || 0)) {
        if (object.queued || object.state !== "saved") {
          // Ours is on its way and will meet theirs as a conflict: leave both for the person.
          return;
        }
        object.deleted = false;
        this._fromPayload(object, payload);
      }
    } else if (event.type === "annotation_deleted") {
      const object = this.byId(event.id);
      if (!object || object.queued || object.state !== "saved") return;
      this.objects.delete(object.key);
      this.dispatchEvent(new CustomEvent("forget", { detail: object.key }));
    }
    this._changed();
  }

  // --- events -------------------------------------------------------------------------------------

  _changed() {
    this._ordered = null;
    this._emit("change");
    this._emit("status");
  }

  _emit(type) {
    this.dispatchEvent(new Event(type));
  }
}

