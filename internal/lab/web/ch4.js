// Chapter 4: processes, walls and doors. One global, K processes, K values;
// a crash that stays in its process; a panic that takes its process down.
import { panel, h, table } from "./run.js";
import { fmtNum } from "./chart.js";

export async function isolation(root) {
  root.append(
    h("h1", {}, "4 · Processes: walls and doors"),
    h("p", {}, h("span", { class: "real-label" }, "REAL MEASUREMENT"),
      " The lab starts K children of its own binary. Each stores its own number in the same global variable, waits until all have, and reads it back. ",
      "Every child finds the variable at the same virtual address, and every child reads back its own number: the address is the same, the page behind it is not, because each process has its own page tables."),
    h("p", {}, "One more child reads through a nil pointer. The kernel stops it with SIGSEGV; the others finish untouched. ",
      "Then the contrast: one process running four counting goroutines, one of which panics without a recover. The panic ends the process, and the three healthy goroutines with it."),
    h("p", {}, "The door in the wall: every child maps one shared page (", h("code", {}, "MAP_SHARED"), ", from a memfd the lab passes down) and adds 1 to a counter in it. That counter is the same for all of them."),
  );
  const card = h("div", { class: "card" });
  const out = h("div", { id: "result-isolation" });
  root.append(card, out);
  await panel(card, "isolation", {
    onStart() { out.replaceChildren(); },
    onResult(r) {
      const first = r.children[0];
      out.append(
        table(["PID", "Address of the global", "Wrote", "Read back", "Shared counter", "Private", "Shared", "PSS", "Exit"], r.children.map((c) => [
          String(c.pid), h("code", {}, c.addr), fmtNum(c.wrote), h("span", { class: c.read === c.wrote ? "right" : "wrong" }, fmtNum(c.read)),
          fmtNum(c.shared), `${fmtNum(c.privateKiB)} KiB`, `${fmtNum(c.sharedKiB)} KiB`, `${fmtNum(c.pssKiB)} KiB`, c.exit]), "table-isolation"),
        h("p", { id: "isolation-verdict", class: r.sameAddress && r.ownValues ? "right" : "wrong" },
          r.sameAddress && r.ownValues ? `${r.children.length} processes, one address (${first.addr}), ${r.children.length} different values: each process has its own memory.`
            : "The children did not all see their own value at one address; see the table."),
        h("p", { id: "isolation-shared" }, `The shared counter reads ${fmtNum(first.shared)} in every child: the one page they all mapped with MAP_SHARED.`),
        h("p", { id: "isolation-crash", class: "wrong" }, `The crashing child: ${r.crashed.exit}; ${r.crashed.signal || "no fault line"}. The others above exited 0.`),
        h("p", { id: "isolation-panic", class: "wrong" }, `One goroutine's panic: the process ended (${r.panic.exit}) with its four goroutines at ${(r.panic.counts || []).join(", ")} counts. ${r.panic.reason}`),
        h("h2", {}, "Where the memory is"),
        h("p", {}, "From the first child's /proc/self/maps: the page of the global is private (", h("code", {}, "rw-p"), "), the program's code is mapped from the binary and read-only (",
          h("code", {}, "r-xp"), "). The kernel shares the code's pages between every process that runs the binary, which is why each child's shared memory is large and its private memory small. ",
          "The guide's claim that each process has its own code segment is true of the mapping, not of the memory."),
        h("pre", { class: "code", id: "isolation-maps" }, `${first.mapLine}   ← the global\n${first.text}   ← the code`),
      );
    },
  });
}
