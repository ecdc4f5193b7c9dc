// Colour picker + hex field pairs: <input type="color" data-hex-field="ID"> mirrors the text field
// with that id (the field the form submits). Delegated, so rows swapped in by htmx work too.
document.addEventListener("input", (event) => {
  const target = event.target;
  if (!(target instanceof HTMLInputElement)) return;
  if (target.type === "color" && target.dataset.hexField) {
    const hex = document.getElementById(target.dataset.hexField);
    if (hex) hex.value = target.value;
  } else if (target.classList.contains("hex") && /^#[0-9a-fA-F]{6}$/.test(target.value)) {
    const picker = document.querySelector(`input[type="color"][data-hex-field="${target.id}"]`);
    if (picker) picker.value = target.value.toLowerCase();
  }
});
