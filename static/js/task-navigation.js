// Keyboard navigation inside a task: "<" previous item, ">" next item, ">>" (two ">" in quick
// succession) or "U" the next unannotated item, Enter saves and goes on. Keys typed into a field
// other than a radio button are left alone, and so is Enter on a focused link or button.
(() => {
  const DOUBLE_MS = 400;
  let pendingNext = null;
  const go = (id) => {
    const link = document.getElementById(id);
    if (link) window.location.assign(link.href);
  };
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target instanceof HTMLElement && target.matches("textarea, select, input:not([type=radio]):not([type=checkbox])");
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "<") {
      event.preventDefault();
      go("nav-previous");
    } else if (event.key === ">") {
      event.preventDefault();
      if (pendingNext) {
        clearTimeout(pendingNext);
        pendingNext = null;
        go("nav-next-open");
      } else {
        pendingNext = setTimeout(() => { pendingNext = null; go("nav-next"); }, DOUBLE_MS);
      }
    } else if (event.key === "u" || event.key === "U") {
      event.preventDefault();
      go("nav-next-open");
    } else if (event.key === "Enter") {
      // A focused link or button keeps its own Enter (keyboard users follow "<" or ">" with it).
      if (target instanceof HTMLElement && target.closest("a[href], button")) return;
      event.preventDefault();
      const form = document.getElementById("item-form");
      if (form) form.requestSubmit();
    }
  });
})();
