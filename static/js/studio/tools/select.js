// Select: click an object to select it (the topmost one under the pointer), click empty image to let
// go; drag the selected polygon's vertices to edit it; drag elsewhere to pan.

export class SelectTool {
  constructor(studio, vertices) {
    this.name = "select";
    this.studio = studio;
    this.vertices = vertices;
    this.cursor = "";
  }

  pointerDown(point) {
    if (this.vertices.grab(point)) return true;
    const hit = this.studio.masks.hit(...point);
    this.studio.select(hit ? hit.key : null);
    return hit ? true : "pan";
  }

  pointerMove(point) {
    this.vertices.move(point);
  }

  pointerUp() {
    this.vertices.drop();
  }

  cancel() {
    this.vertices.cancel();
  }

  get busy() {
    return Boolean(this.vertices.drag);
  }

  key() {
    return false;
  }

  draw(ctx) {
    this.vertices.draw(ctx);
  }
}
