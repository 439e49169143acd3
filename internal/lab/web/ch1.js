// Chapter 1: processes, threads and goroutines, and what each costs here.
import { panel, h, table } from "./run.js";
import { barChart, histogram, lineChart, fmtNs, fmtBytes, fmtNum } from "./chart.js";

export async function costs(root) {
  root.append(
    h("h1", {}, "1 · What a goroutine, a thread and a process really cost"),
    h("p", {}, h("span", { class: "real-label" }, "REAL MEASUREMENT"), " Everything on this page is measured on this machine when you press Run."),
    h("p", {}, "A ", h("strong", {}, "process"), " owns an address space, open files and at least one thread; the kernel must switch page tables to move between two of them. ",
      "A ", h("strong", {}, "thread"), " shares its process's memory but has its own stack and its own entry in the kernel's scheduler. ",
      "A ", h("strong", {}, "goroutine"), " is a function with a small growable stack that Go's runtime multiplexes onto a few threads; the kernel never hears of it."),
    h("p", {}, "The run creates N of each and keeps them alive while it reads this process's memory from ", h("code", {}, "/proc"),
      ". Then it bounces one byte back and forth between two of each kind (channels for goroutines, pipes for threads and processes), on one core and on all, and divides by the number of switches."),
  );
  const card = h("div", { class: "card" });
  root.append(card);
  const live = h("div", { id: "costs-live" });
  const out = h("div", { id: "result-costs" });
  root.append(live, out);
  const points = {};
  await panel(card, "costs", {
    onStart() { out.replaceChildren(); live.replaceChildren(); for (const k in points) delete points[k]; },
    onEvent(e) {
      if (e.kind !== "point") return;
      (points[e.series] ||= []).push([e.x, e.y]);
      lineChart(live, { title: "Switch time measured so far", series: Object.entries(points).map(([name, p]) => ({ name, points: p })),
        x: { label: "Cores", ticksAt: [1, 2, 4, 8, 16, 32, 64, 128].filter((c) => c <= navigator.hardwareConcurrency || c === 1) }, y: { label: "Per switch", unit: "ns", log: true } });
    },
    onResult(r) { live.replaceChildren(); render(out, r); },
  });
}

function render(out, r) {
  const kinds = r.creations.map((c) => c.kind);
  out.append(
    h("h2", {}, "Creating them"),
    table(["Kind", "N", "Create each", "Resident each", "Reserved address space each", "Kernel memory each"],
      r.creations.map((c) => [c.kind, fmtNum(c.n), fmtNs(c.eachNs),
        fmtBytes(c.rssEach) + (c.pssEach ? ` (PSS ${fmtBytes(c.pssEach)})` : ""),
        fmtBytes(c.virtEach), c.kernelEach < 0 ? "not readable" : fmtBytes(c.kernelEach)]), "table-creations"),
    h("ul", {}, r.creations.map((c) => h("li", {}, h("strong", {}, c.kind + ": "), c.note))),
  );
  const mem = h("div"), make = h("div"), sw = h("div"), hist = h("div");
  out.append(mem, make);
  barChart(mem, { title: "Memory per item (log scale)", categories: kinds,
    series: [{ name: "resident (RSS; PSS for processes)", values: r.creations.map((c) => c.pssEach || c.rssEach) },
      { name: "reserved address space", values: r.creations.map((c) => c.virtEach) }], y: { label: "Bytes", unit: "bytes", log: true } });
  barChart(make, { title: "Time to create one (log scale)", categories: kinds, series: [{ name: "", values: r.creations.map((c) => c.eachNs) }], y: { label: "Time", unit: "ns", log: true } });
  const proc = r.creations.find((c) => c.kind === "process");
  if (proc && proc.latenciesUs && proc.latenciesUs.length > 1) {
    out.append(hist);
    histogram(hist, { title: `Start-up time of each of the ${proc.n} processes`, values: proc.latenciesUs.map((v) => v * 1e3), x: { label: "Start-up time", fmt: fmtNs } });
  }
  const cores = [...new Set(r.switches.map((s) => s.cores))];
  out.append(h("h2", {}, "Switching between them"), sw);
  barChart(sw, { title: "One context switch (half a ping-pong round trip, log scale)", categories: kinds,
    series: cores.map((c) => ({ name: c === 1 ? "one core" : `all ${c} cores`, values: kinds.map((k) => (r.switches.find((s) => s.kind === k && s.cores === c) || {}).nsPerSwitch) })),
    y: { label: "Per switch", unit: "ns", log: true } });
  out.append(table(["Kind", "Cores", "Round trips", "Per switch"], r.switches.map((s) => [s.kind, String(s.cores), fmtNum(s.roundTrips), fmtNs(s.nsPerSwitch)]), "table-switches"));
  out.append(h("h2", {}, "The textbook, checked"),
    table(["Claim", "Measured here", "Verdict"], r.claims.map((c) => [c.claim, c.unit === "bytes" ? fmtBytes(c.measured) : fmtNs(c.measured),
      h("span", { class: "verdict-" + c.verdict.split(" ")[0].replace(":", "") }, c.verdict)]), "table-claims"),
    h("h2", {}, "What if 100,000 users each got one?"),
    h("p", { class: "card users", id: "users-line" }, r.users.sentence));
}
