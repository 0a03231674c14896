// Swagger UI over the gateway's own /openapi.json; nothing is fetched from elsewhere
// (validatorUrl null: no call to validator.swagger.io).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false,
  persistAuthorization: false,
});
