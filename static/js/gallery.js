// Gallery selection: "select all shown", the selection count, and a confirmation before a
// destructive bulk action. Label swatches take their colour from data-color (no inline styles).
(() => {
  const paint = (root) => {
    root.querySelectorAll("[data-color]").forEach((el) => { el.style.backgroundColor = el.dataset.color; });
  };
  paint(document);
  document.addEventListener("htmx:afterSwap", (event) => paint(event.target));

  const form = document.getElementById("gallery-form");
  if (!form) return;
  const count = document.getElementById("selection-count");
  const update = () => {
    if (!count) return;
    const n = form.querySelectorAll("input.pick:checked").length;
    count.textContent = `${n} selected`;
  };
  form.addEventListener("change", (event) => {
    if (event.target.id === "select-all") {
      form.querySelectorAll("input.pick").forEach((box) => { box.checked = event.target.checked; });
    }
    update();
  });
  document.addEventListener("htmx:afterSwap", update);
  form.addEventListener("submit", (event) => {
    const button = event.submitter;
    if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });
})();
