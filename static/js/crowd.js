// Crowd worker pages: keys 1…9 pick an answer; the Mechanical Turk hand-back form sends itself.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const auto = document.querySelector("form[data-crowd-autosubmit]");
  if (auto) {
    auto.submit();
    return;
  }
  const form = document.querySelector("form[data-crowd-keys]");
  if (!form) return;
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const button = form.querySelector(`button[data-key="${event.key}"]`);
    if (button) {
      event.preventDefault();
      button.click();
    }
  });
});
