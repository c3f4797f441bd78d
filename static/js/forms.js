// Plain forms that need a touch of script, declared with data attributes instead of inline
// handlers (the Content-Security-Policy runs no inline script):
//   <form data-confirm="Question?">   asks before submitting; Cancel keeps the page as it is.
//   <select data-submit-on-change>    submits its form when a new option is chosen (filters).
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
})();
