// Undo and redo (Ctrl+Z / Ctrl+Y) of changes to objects: drawing, editing, relabelling, answers,
// order and deletion. Each step keeps the object's fields before and after; undoing brings the
// object back to "before" through the store, which writes it like any other change (with the
// object's current version). So a change that was saved long ago is undone by saving the previous
// state as a new version, and an undone creation deletes the object on the server.

const LIMIT = 500;

export class History extends EventTarget {
  constructor(store) {
    super();
    this.store = store;
    this.undoStack = [];
    this.redoStack = [];
  }

  /** Remember that object `key` went from `before` to `after` (snapshots; null = not there). */
  record(key, before, after, what = "change") {
    if (JSON.stringify(before) === JSON.stringify(after)) return;
    this.undoStack.push({ key, before, after, what });
    if (this.undoStack.length > LIMIT) this.undoStack.shift();
    this.redoStack = [];
    this._changed();
  }

  get canUndo() {
    return this.undoStack.length > 0;
  }

  get canRedo() {
    return this.redoStack.length > 0;
  }

  undo() {
    const step = this.undoStack.pop();
    if (!step) return null;
    this.store.restore(step.key, step.before);
    this.redoStack.push(step);
    this._changed();
    return step;
  }

  redo() {
    const step = this.redoStack.pop();
    if (!step) return null;
    this.store.restore(step.key, step.after);
    this.undoStack.push(step);
    this._changed();
    return step;
  }

  _changed() {
    this.dispatchEvent(new Event("change"));
  }
}
