// Propagation controls under a video's timeline: carry the objects of the current frame through
// the video with a tracker (a SAM 2 model, or the optical-flow fallback), forward, backward or
// both ways; re-segment the frames marked on the strip; stop a run; resume one that failed.
//
// Runs go over the studio socket (`propagate`, `stop`; the protocol is in
// annotation/studio/consumers.py). The reply says the run is queued; then each frame's objects
// arrive as `annotation` / `annotation_deleted` events (the store takes them, the strip shows
// them) with a `video_frame` event per frame, which moves the progress bar and, with "Follow" on,
// the playhead; a last `run` event gives the end state.

const $ = (selector, root = document) => root.querySelector(selector);

const DIRECTION_WORDS = { forward: "forward", backward: "backward", both: "both ways" };
const END_STATES = new Set(["succeeded", "cancelled", "failed"]);

export class PropagationPanel {
  constructor(timeline, root) {
    this.timeline = timeline;
    this.root = root;
    this.picker = $("#propagate-model", root);
    this.stopButton = $("#propagate-stop", root);
    this.resumeButton = $("#propagate-resume", root);
    this.resegmentButton = $("#propagate-resegment", root);
    this.follow = $("#propagate-follow", root);
    this.progress = $("#propagate-progress", root);
    this.state = $("#propagate-state", root);
    this.run = null; // {job, state, done, total, last_done, message}
    this.lastRequest = null; // what the last run was asked to do, for Resume
    this.sending = false;
    for (const button of root.querySelectorAll("[data-propagate]")) {
      button.addEventListener("click", () => this.start(button.dataset.propagate));
    }
    this.resegmentButton.addEventListener("click", () => this.resegment());
    this.stopButton.addEventListener("click", () => this.stop());
    this.resumeButton.addEventListener("click", () => this.resume());
    this.buttons();
  }

  get transport() {
    return this.timeline.studio.store?.transport;
  }

  get running() {
    return Boolean(this.run && !END_STATES.has(this.run.state));
  }

  /** Propagate from the current frame, `direction` forward, backward or both. */
  start(direction) {
    const frame = this.timeline.frame;
    const words = `Propagating ${DIRECTION_WORDS[direction]} from frame ${frame}…`;
    this.send({ model: this.picker.value, frame, direction }, words);
  }

  /** Run the tracker again on the frames marked on the strip only. */
  resegment() {
    const frames = [...this.timeline.marked].sort((a, b) => a - b);
    if (!frames.length) {
      this.say("Mark frames on the strip first (M, or Ctrl+click on the strip).");
      return;
    }
    const message = { model: this.picker.value, frame: this.timeline.frame, direction: "both", frames };
    this.send(message, `Re-segmenting ${frames.length} marked frame${frames.length === 1 ? "" : "s"}…`);
  }

  /** Go on with a failed run from its last done frame. */
  resume() {
    if (this.run?.state !== "failed" || !this.run.job) return;
    // The server knows the run's own settings; these say the same when this page started it.
    const request = this.lastRequest || { model: this.picker.value, frame: this.timeline.frame, direction: "forward" };
    const words = `Resuming the run from frame ${this.run.last_done ?? "its start"}…`;
    this.send({ ...request, resume: this.run.job }, words);
  }

  stop() {
    if (!this.run?.job || !this.running) return;
    this.transport?.stop(this.run.job);
    this.say("Stopping after the frame being computed…");
    this.stopButton.disabled = true;
  }

  async send(message, words) {
    if (this.sending || this.running) return;
    if (this.transport?.kind !== "socket") {
      this.say("Propagation needs the studio's live connection, which is down.");
      return;
    }
    const { resume, ...request } = message;
    this.sending = true;
    this.say(words);
    this.buttons();
    try {
      const reply = await this.transport.propagate(message);
      this.lastRequest = request;
      this.update(reply);
    } catch (error) {
      this.say(error.message || "The run could not be started.", true);
    } finally {
      this.sending = false;
      this.buttons();
    }
  }

  /** A frame from the socket: a run's state, a frame done, or an error for a stop. */
  event(message) {
    if (message.type === "run") this.update(message);
    else if (message.type === "video_frame") this.frameDone(message);
    else if (message.type === "error" && this.running) this.say(message.message || "Refused.", true);
  }

  frameDone(message) {
    if (!this.run || this.run.job !== message.job) this.run = { job: message.job, state: "running" };
    this.run.done = message.done;
    this.run.total = message.total;
    this.run.last_done = message.frame;
    this.bar();
    this.say(`Frame ${message.frame} done: ${message.done} of ${message.total}.`);
    if (this.follow.checked) this.timeline.follow(message.frame);
    this.buttons();
  }

  update(run) {
    if (this.run && run.job !== this.run.job && !END_STATES.has(this.run.state) && END_STATES.has(run.state)) return;
    this.run = { ...(this.run?.job === run.job ? this.run : {}), ...run };
    this.bar();
    const { state, done = 0, total = 0 } = this.run;
    if (state === "queued") this.say(`Queued: ${total} frame${total === 1 ? "" : "s"} to do.`);
    else if (state === "running") this.say(`Running: ${done} of ${total} frames.`);
    else if (state === "succeeded") this.say(`Done: ${done} of ${total} frames.`);
    else if (state === "cancelled") this.say(`Stopped after ${done} of ${total} frames; those are kept.`);
    else if (state === "failed") {
      const last = this.run.last_done;
      const kept = last != null ? ` Frames up to ${last} are kept: Resume goes on from there.` : "";
      this.say(`Failed: ${this.run.message || "the run stopped."}${kept}`, true);
    }
    this.root.dataset.state = state || "";
    this.buttons();
  }

  bar() {
    const { done = 0, total = 0 } = this.run || {};
    this.progress.max = Math.max(1, total);
    this.progress.value = Math.min(done, Math.max(1, total));
    this.progress.textContent = `${done} / ${total}`;
  }

  buttons() {
    const live = this.transport?.kind === "socket" && this.timeline.ready;
    const busy = this.sending || this.running;
    for (const button of this.root.querySelectorAll("[data-propagate]")) button.disabled = !live || busy;
    this.resegmentButton.disabled = !live || busy || this.timeline.marked.size === 0;
    this.stopButton.disabled = !this.running;
    this.resumeButton.hidden = this.run?.state !== "failed";
    this.resumeButton.disabled = !live || busy;
    $("#propagate-marked", this.root).textContent = String(this.timeline.marked.size);
  }

  say(text, error = false) {
    this.state.textContent = text;
    this.state.classList.toggle("error", error);
  }
}
