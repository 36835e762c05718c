// Renders /openapi.json as a readable list of operations (text only, no third-party code).
const main = document.getElementById("api");
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text) e.textContent = text; if (cls) e.className = cls; return e; };
const doc = await (await fetch("/openapi.json")).json();
main.append(el("p", doc.info?.description ?? ""));
for (const [path, item] of Object.entries(doc.paths)) {
  for (const [method, op] of Object.entries(item)) {
    const section = el("section");
    section.style.margin = "1rem 0";
    section.append(el("h2", `${method.toUpperCase()} ${path}`));
    if (op.description || op.summary) section.append(el("p", op.summary ?? op.description));
    const params = op.parameters ?? [];
    if (params.length) {
      const ul = el("ul");
      for (const p of params) ul.append(el("li", `${p.name} (${p.in})${p.description ? ": " + p.description : ""}`));
      section.append(el("h3", "Parameters"), ul);
    }
    const responses = el("ul");
    for (const [status, r] of Object.entries(op.responses ?? {})) responses.append(el("li", `${status} ${r.description ?? ""}`));
    section.append(el("h3", "Responses"), responses);
    main.append(section);
  }
}
