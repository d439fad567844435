// Renders /openapi.json as a readable reference (the stock Swagger UI needs a CDN).
(() => {
  "use strict";
  const h = (tag, attrs = {}, ...kids) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) (k === "class" ? (n.className = v) : n.setAttribute(k, v));
    for (const kid of kids.flat(Infinity)) if (kid !== null && kid !== undefined) n.append(kid.nodeType ? kid : String(kid));
    return n;
  };
  // `code` spans in OpenAPI descriptions become <code> elements
  const rich = (text) => String(text || "").split("`").map((part, i) => (i % 2 ? h("code", {}, part) : part));
  const typeOf = (s) => {
    if (!s) return "";
    if (s.enum) return s.enum.join(" | ");
    if (s.anyOf) return s.anyOf.map(typeOf).filter((t) => t && t !== "null").join(" | ");
    const range = [s.minimum !== undefined ? `≥ ${s.minimum}` : "", s.maximum !== undefined ? `≤ ${s.maximum}` : ""].filter(Boolean).join(", ");
    return (s.format === "binary" ? "file" : s.type || "") + (range ? ` (${range})` : "");
  };

  function operation(path, verb, op) {
    const card = h("section", { class: "card op" },
      h("div", { class: "op-head" }, h("span", { class: `verb ${verb}` }, verb.toUpperCase()), h("span", { class: "path" }, path),
        h("span", { class: "op-summary" }, rich(op.summary))));
    if (op.description) card.append(h("p", { class: "op-desc" }, rich(op.description)));
    const params = op.parameters || [];
    if (params.length) {
      card.append(h("h3", {}, "Parameters"), h("table", {},
        h("tr", {}, h("th", {}, "name"), h("th", {}, "in"), h("th", {}, "type"), h("th", {}, "description")),
        params.map((p) => h("tr", {}, h("td", {}, h("code", {}, p.name)), h("td", {}, p.in), h("td", {}, typeOf(p.schema)),
          h("td", {}, rich(p.description || (p.schema && p.schema.description)))))));
    }
    if (op.requestBody) {
      const body = op.requestBody;
      card.append(h("h3", {}, "Request body"), h("p", { class: "op-desc" }, rich(body.description)),
        h("p", { class: "op-desc" }, Object.keys(body.content || {}).map((t, i) => [i ? ", " : "", h("code", {}, t)])));
    }
    const responses = Object.entries(op.responses || {});
    if (responses.length) {
      card.append(h("h3", {}, "Responses"), h("table", {},
        h("tr", {}, h("th", {}, "status"), h("th", {}, "meaning"), h("th", {}, "content")),
        responses.map(([code, r]) => h("tr", {}, h("td", { class: "status-code" }, code), h("td", {}, rich(r.description)),
          h("td", {}, Object.keys(r.content || {}).map((t, i) => [i ? " " : "", h("code", {}, t)]))))));
    }
    return card;
  }

  fetch("/openapi.json").then((r) => r.json()).then((spec) => {
    const host = window.location.host;
    document.querySelector(".code").textContent = document.querySelector(".code").textContent.replaceAll("HOST", host);
    document.getElementById("title").textContent = `${spec.info.title} API ${spec.info.version}`;
    document.getElementById("summary").textContent = spec.info.summary || spec.info.description || "";
    const ops = document.getElementById("ops");
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [verb, op] of Object.entries(item)) ops.append(operation(path, verb, op));
    }
  }).catch((err) => {
    const e = document.getElementById("doc-error");
    e.textContent = `The API description could not be loaded: ${err}`;
    e.hidden = false;
  });
})();
