// Reference: the guide's tables, each cell beside what this machine
// measured and a verdict.
import { panel, h } from "./run.js";

export async function reference(root) {
  root.append(
    h("h1", {}, "Reference: the guide's tables, measured here"),
    h("p", {}, h("span", { class: "real-label" }, "REAL MEASUREMENT"),
      " Run fills the guide's four tables (the cost of a process, a thread and a coroutine; the ways between processes; the synchronisation mechanisms; the selection guide) ",
      "from short runs of chapters 1, 3 and 4 on this machine: every cell shows the guide's words, the figure measured here and a verdict. ",
      "A band the measured range straddles is inconclusive; a cell that cannot be measured says where it is shown, or that it is not."),
  );
  const card = h("div", { class: "card" });
  const out = h("div", { id: "result-reference" });
  root.append(card, out);
  await panel(card, "reference", {
    runLabel: "Measure and fill the tables",
    onStart() { out.replaceChildren(); },
    onResult(r) {
      for (const t of r.tables) {
        out.append(h("h2", {}, t.title),
          h("table", { id: `reference-${t.id}`, class: "reference" },
            h("thead", {}, h("tr", {}, t.columns.map((c) => h("th", {}, c)))),
            h("tbody", {}, t.rows.map((row) => h("tr", {}, h("th", { scope: "row" }, row.label), row.cells.map(cell))))),
          ...(t.notes || []).map((n) => h("p", { class: "note" }, n)));
      }
    },
  });
}

// cell shows the guide's words, the measured figure and the verdict.
function cell(c) {
  return h("td", { class: "ref-cell" },
    c.guide ? h("div", { class: "guide" }, c.guide) : "",
    c.measured ? h("div", { class: "measured" }, c.measured) : "",
    c.verdict ? h("div", { class: "verdict-" + c.kind }, c.verdict) : "");
}
