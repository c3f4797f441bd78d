// Starts Swagger UI on /schema (webapp/schema_ui.py). A file, not an inline script: the
// Content-Security-Policy allows only scripts served by the app.
(() => {
  "use strict";
  const { specUrl, csrfCookie, csrfHeader } = document.currentScript.dataset;

  function cookie(name) {
    const pair = document.cookie.split("; ").find((entry) => entry.startsWith(`${name}=`));
    return pair === undefined ? undefined : decodeURIComponent(pair.slice(name.length + 1));
  }

  window.SwaggerUIBundle({
    url: specUrl,
    dom_id: "#swagger-container",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    validatorUrl: null, // the default sends the document to validator.swagger.io
    requestInterceptor: (request) => {
      const token = csrfCookie ? cookie(csrfCookie) : undefined;
      if (token !== undefined && csrfHeader) request.headers[csrfHeader] = token;
      return request;
    },
  });
})();
