// Plain forms that need a touch of script, declared with data attributes instead of inline
// handlers (the Content-Security-Policy runs no inline script):
//   <form data-confirm="Question?">   asks before submitting; Cancel keeps the page as it is.
//   <select data-submit-on-change>    submits its form when a new option is chosen (filters).
//   <input data-browser-zone="default"> a time zone not chosen yet: set to the browser's zone.
//   <input data-browser-zone="suggest"> the person's own zone: a button offers the browser's
//                                       when it differs. The server still checks what is sent.
//   <div role="status" data-flash>    a flash message (webapp/flash.py), read out once the page is up.
(() => {
  "use strict";
  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
  document.addEventListener("change", (event) => {
    const select = event.target.closest("select[data-submit-on-change]");
    if (select?.form) select.form.requestSubmit();
  });

  const browserZone = (() => {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch {
      return "";
    }
  })();
  for (const input of document.querySelectorAll("input[data-browser-zone]")) {
    if (!browserZone || input.value === browserZone) continue;
    if (input.dataset.browserZone === "default") {
      input.value = browserZone;
      continue;
    }
    const use = document.createElement("button");
    use.type = "button";
    use.className = "btn btn-small browser-zone";
    use.textContent = `Use this device's time zone (${browserZone})`;
    use.addEventListener("click", () => {
      input.value = browserZone;
      use.remove();
      input.focus();
    });
    input.after(use);
  }
  // Screen readers announce a change to a live region, not the words it held when the page was
  // loaded: the flash's words are put back a moment later (its box keeps its height meanwhile).
  document.querySelectorAll("[data-flash]").forEach((flash) => {
    const words = flash.textContent;
    flash.style.minHeight = `${flash.getBoundingClientRect().height}px`;
    flash.textContent = "";
    setTimeout(() => {
      flash.textContent = words;
      flash.style.removeProperty("min-height");
    }, 150);
  });
})();
