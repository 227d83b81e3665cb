// Renders /api/v1/openapi.json as a list of operations grouped by tag.
// Served by the binary itself; builds the page with text nodes only.
"use strict";

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function schemaName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.type === "array") return schemaName(schema.items) + "[]";
  return schema.type || "";
}

function table(headings, rows) {
  const result = element("table");
  const head = element("tr");
  headings.forEach((h) => head.appendChild(element("th", h)));
  result.appendChild(head);
  rows.forEach((cells) => {
    const row = element("tr");
    cells.forEach((cell) => row.appendChild(element("td", cell)));
    result.appendChild(row);
  });
  return result;
}

function operation(method, path, op, schemas) {
  const box = element("details");
  const summary = element("summary");
  summary.appendChild(element("span", method.toUpperCase(), "method " + method));
  summary.appendChild(element("span", path, "path"));
  if (op.summary) summary.appendChild(element("span", op.summary, "lead"));
  box.appendChild(summary);
  if (op.description) box.appendChild(element("p", op.description));
  const parameters = op.parameters || [];
  if (parameters.length) {
    box.appendChild(element("h4", "Parameters"));
    box.appendChild(table(["name", "in", "type", "required"], parameters.map((p) =>
      [p.name, p.in, schemaName(p.schema), p.required ? "yes" : "no"])));
  }
  const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
  if (body) {
    const name = schemaName(body.schema);
    box.appendChild(element("h4", "Request body: " + name));
    if (schemas[name]) box.appendChild(element("pre", JSON.stringify(schemas[name], null, 2)));
  }
  const responses = op.responses || {};
  box.appendChild(element("h4", "Responses"));
  box.appendChild(table(["status", "meaning"], Object.keys(responses).map((status) => {
    const content = responses[status].content && responses[status].content["application/json"];
    return [status, responses[status].description || schemaName(content && content.schema)];
  })));
  return box;
}

async function render() {
  const main = document.getElementById("operations");
  const answer = await fetch("/api/v1/openapi.json");
  const spec = await answer.json();
  const schemas = (spec.components && spec.components.schemas) || {};
  const byTag = new Map();
  Object.entries(spec.paths || {}).forEach(([path, item]) => {
    Object.entries(item).forEach(([method, op]) => {
      if (!op || typeof op !== "object" || !op.responses) return;
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(method, path, op, schemas));
    });
  });
  main.replaceChildren();
  const version = element("p", (spec.info && spec.info.title) + " " + (spec.info && spec.info.version));
  main.appendChild(version);
  [...byTag.keys()].sort().forEach((tag) => {
    main.appendChild(element("h2", tag));
    byTag.get(tag).forEach((box) => main.appendChild(box));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  render().catch((error) => {
    document.getElementById("operations").replaceChildren(
      element("p", "The API description could not be loaded: " + error));
  });
});
