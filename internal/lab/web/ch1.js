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
      ". Then it bounces one byte back and forth between two of each kind (channels for goroutines, pipes for threads and processes), five rounds each, ",
      "first with both on one CPU, where every hand-over is a context switch, then with each thread or process pinned to a CPU of its own, where nobody switches to anybody: ",
      "each side sleeps and the other wakes it across CPUs (goroutines cannot be pinned: they get GOMAXPROCS 2, and the runtime decides). From every round it takes off what passing the byte costs one thread (or one goroutine) alone, ",
      "with no switch, as lmbench does, and it counts the switches the kernel saw."),
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
  const made = (c) => fmtNs(c.eachNs) + (c.warmEachNs ? ` cold, ${fmtNs(c.warmEachNs)} warm` : "");
  const held = (c) => fmtBytes(c.rssEach) + (c.privateEach ? ` (${fmtBytes(c.privateEach)} private, ${fmtBytes(c.sharedEach)} shared)` : "");
  out.append(
    h("h2", {}, "Creating them"),
    table(["Kind", "N", "Create each", "Resident each", "Reserved address space each", "Kernel memory each"],
      r.creations.map((c) => [c.kind, fmtNum(c.n), made(c), held(c),
        fmtBytes(c.virtEach), c.kernelEach < 0 ? "not readable" : fmtBytes(c.kernelEach)]), "table-creations"),
    h("ul", { id: "creation-notes" }, r.creations.map((c) => h("li", {}, h("strong", {}, c.kind + ": "), c.note, ...details(c)))),
  );
  const mem = h("div"), make = h("div"), sw = h("div"), hist = h("div");
  out.append(mem, make);
  barChart(mem, { title: "Memory per item (log scale)", categories: kinds,
    series: [{ name: "resident (private memory for processes)", values: r.creations.map((c) => c.privateEach || c.rssEach) },
      { name: "reserved address space", values: r.creations.map((c) => c.virtEach) }], y: { label: "Bytes", unit: "bytes", log: true } });
  barChart(make, { title: "Time to create one (log scale)", categories: kinds, series: [{ name: "", values: r.creations.map((c) => c.eachNs) }], y: { label: "Time", unit: "ns", log: true } });
  const proc = r.creations.find((c) => c.kind === "process");
  if (proc && proc.latenciesUs && proc.latenciesUs.length > 1) {
    out.append(hist);
    histogram(hist, { title: `Start-up time of each of the ${proc.n} processes`, values: proc.latenciesUs.map((v) => v * 1e3), x: { label: "Start-up time", fmt: fmtNs } });
  }
  const cores = [...new Set(r.switches.map((s) => s.cores))];
  out.append(h("h2", {}, "Switching between them"), sw);
  barChart(sw, { title: "Per hand-over, median of the rounds, base taken off (log scale)", categories: kinds,
    series: cores.map((c) => ({ name: c === 1 ? "both on one CPU: a context switch" : "two CPUs: a cross-CPU wake-up (goroutines: GOMAXPROCS 2)", values: kinds.map((k) => (r.switches.find((s) => s.kind === k && s.cores === c) || {}).nsPerSwitch) })),
    y: { label: "Per switch", unit: "ns", log: true } });
  out.append(table(["Kind", "CPUs", "What it is", "Round trips × rounds", "Per switch (median)", "Range", "Raw", "Base taken off", "Kernel switches per round trip"],
    r.switches.map((s) => [s.kind, String(s.cores), s.what, `${fmtNum(s.roundTrips)} × ${s.rounds}`, fmtNs(s.nsPerSwitch),
      `${fmtNs(s.minNs)} to ${fmtNs(s.maxNs)}`, fmtNs(s.rawNs), fmtNs(s.baseNs), s.kernelSwitchesPerTrip.toFixed(2)]), "table-switches"),
    h("p", {}, "About two kernel switches per round trip for threads and processes (one on each side); about none for goroutines: Go's runtime switches them itself, and the kernel never hears of it."),
    h("p", { id: "costs-goroutine-two" }, "The goroutines' second figure is not a cross-CPU wake-up: a goroutine cannot be pinned to a CPU, and with GOMAXPROCS 2 the runtime puts the goroutine a channel wakes in its waker's runnext slot, on the same P, so the pair often never leaves one P. ",
      "It measures what a Go program gets with two Ps, not what crossing CPUs costs; the threads' and processes' figures do cross."));
  out.append(h("h2", {}, "The textbook, checked"),
    table(["Claim", "Measured here", "Verdict"], r.claims.map((c) => [c.claim, measuredText(c),
      h("span", { class: "verdict-" + c.kind }, c.verdict)]), "table-claims"),
    h("p", {}, "A verdict reads the range of the rounds, not one run: a range that lies across an edge of the claim is inconclusive."),
    h("h2", {}, "What if 100,000 users each got one?"),
    h("p", { class: "card users", id: "users-line" }, r.users.sentence));
}

function measuredText(c) {
  const f = c.unit === "bytes" ? fmtBytes : fmtNs;
  return f(c.measured) + (c.minMeasured ? ` (${f(c.minMeasured)} to ${f(c.maxMeasured)})` : "");
}

// details are the figures a creation adds to its note.
function details(c) {
  const out = [];
  if (c.warmEachNs) out.push(` Created cold (new stacks) in ${fmtNs(c.eachNs)} each; a second round, reusing the stacks the first freed, in ${fmtNs(c.warmEachNs)}. Go's own count of stack memory: ${fmtBytes(c.stackEach)} each.`);
  if (c.stackReserved) out.push(` Each thread's stack is a mapping of ${fmtBytes(c.stackReserved)}, of which ${fmtBytes(c.stackResident)} is resident: the reserved address space is the stack size limit, not memory used.`);
  if (c.spawnNs) out.push(` Starting ${c.spawnWhat} takes ${fmtNs(c.spawnNs)}: that is the kernel's fork, exec and exit; the rest of the ${fmtNs(c.eachNs)} is Go's start-up and this binary's initialisers. Private memory is what one child holds alone; the shared part (the binary's pages) is counted once however many run.`);
  if (c.minimalPrivate) out.push(` The least a process can be, a static program of a few instructions that only waits, held ${fmtBytes(c.minimalPrivate)} private and ${fmtBytes(c.minimalShared)} shared, and ${fmtBytes(c.minimalKernel)} of kernel memory (its kernel stack and page tables): the rest of a Go child's ${fmtBytes(c.privateEach)} is the runtime's.`);
  return out;
}
