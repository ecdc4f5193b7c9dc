// Starts Swagger UI on /api/docs/ from the self-hosted bundle; the page carries a strict CSP, so
// this lives in a static file. Signed-in "Try it out" requests carry the CSRF token DRF's session
// authentication asks for; token users paste `Token <key>` under Authorize.
(function () {
  "use strict";
  const root = document.getElementById("swagger-ui");
  if (!root || typeof window.SwaggerUIBundle !== "function") {
    return;
  }
  const csrfToken = root.dataset.csrfToken;
  window.SwaggerUIBundle({
    url: root.dataset.schemaUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The public validator is another site: nothing leaves this one.
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor: function (request) {
      if (csrfToken) {
        request.headers["X-CSRFToken"] = csrfToken;
      }
      return request;
    },
  });
})();
