// Chapter 3: synchronisation primitives under contention, and the lost
// update that happens without them.
import { panel, h, onFrame, table } from "./run.js";
import { barChart, lineChart, fmtNs, fmtNum } from "./chart.js";

export async function sync(root) {
  root.append(
    h("h1", {}, "3 · Sharing safely: synchronisation under contention"),
    h("p", {}, h("span", { class: "real-label" }, "REAL MEASUREMENT"),
      " Each primitive guards the same tiny critical section (add one to a shared counter) while 1, 2, 4, … goroutines hammer it. ",
      "Every goroutine works until a shared stop, a fixed time after they were released together, and counts its own operations; each point is run several times and the median run is shown, with the range. ",
      "The chart shows throughput, operations per second of the whole crowd: rising as goroutines are added would mean the primitive scales; ",
      "flat means the operations run one after another however many ask; falling means the asking itself costs (cache lines bouncing between cores, goroutines parked and woken). ",
      "Fairness says whether the goroutines got equal shares: Jain's index is 1 when they did, 1/N when one goroutine did everything. ",
      "After each run the counter is checked: every operation must have landed exactly once."),
    h("p", {}, "With more goroutines than cores, only as many as there are cores run at any moment; the rest wait in Go's run queues, which is why a spinlock can look cheap here and be ruinous when a holder is descheduled."),
  );
  const card = h("div", { class: "card" });
  const chart = h("div", { id: "sync-chart" });
  const out = h("div", { id: "result-sync" });
  root.append(card, chart, out);
  const series = {};
  let prims = [];
  const names = () => Object.fromEntries(prims.map((p) => [p.id, p.name]));
  const draw = onFrame(() => lineChart(chart, { title: "Throughput against the number of goroutines, median run (log scale)",
    series: Object.entries(series).map(([id, points]) => ({ name: names()[id] || id, points })),
    x: { label: "Goroutines", log: true }, y: { label: "Operations per second", unit: "Mops/s", log: true } }));
  await panel(card, "sync", {
    onStart() { out.replaceChildren(); chart.replaceChildren(); for (const k in series) delete series[k]; },
    onEvent(e) {
      if (e.kind !== "point") return;
      (series[e.series] ||= []).push([e.x, e.y / 1e6]);
      draw();
    },
    onResult(r) {
      prims = r.primitives;
      draw();
      const at = (p, g) => r.points.find((q) => q.primitive === p.id && q.goroutines === g);
      const mops = (v) => (v / 1e6).toFixed(v >= 1e7 ? 0 : 1);
      const row = (cell) => (p) => [p.name, ...r.counts.map((g) => { const pt = at(p, g); return cell(pt) + (pt.correct ? "" : " LOST"); })];
      const heads = (first) => [first, ...r.counts.map((g) => `${g} goroutine${g > 1 ? "s" : ""}`)];
      const bad = r.points.filter((p) => !p.correct).length;
      const runs = r.points.length ? r.points[0].runs : 0;
      out.append(
        table(heads("Mops/s, median (range)"), r.primitives.map(row((pt) => `${mops(pt.opsPerSec)} (${mops(pt.minOpsPerSec)}–${mops(pt.maxOpsPerSec)})`)), "table-sync"),
        h("p", { class: "status", id: "sync-check" }, bad ? `${bad} point(s) lost an operation: a bug, please report it.` :
          `Every operation of all ${r.points.length} points, ${runs} run${runs > 1 ? "s" : ""} each, was counted exactly once.`),
        h("h2", {}, "What it cost: CPU time per operation"),
        h("p", {}, r.holdNs > 0 ? `Each critical section holds ${r.hold} of busy work (${r.holdNs.toFixed(0)} ns alone on a core). ` : "The critical sections are empty: set the work inside to give the waiters something to wait for. ",
          "CPU time is the whole process's, user and system, per operation: a waiter that spins spends it and gets nothing done; a parked waiter spends none. ",
          "Compare it with the wall time per operation above to judge \"spinning wastes CPU\"."),
        table(heads("CPU ns per operation"), r.primitives.map(row((pt) => pt.cpuNsPerOp.toFixed(0))), "table-cpu"),
        ...r.points.filter((p) => p.primitive === "rwmutex" && p.goroutines === r.counts[r.counts.length - 1] && p.maxWriteWaitNs > 0).map((p) =>
          h("p", { id: "sync-writer-wait" }, `RWMutex with ${p.goroutines} goroutines, ${r.reads}% of operations reads: the longest a writer waited for Lock was ${(p.maxWriteWaitNs / 1e3).toFixed(1)} µs. `,
            "Go's RWMutex does not let readers starve a writer: once a writer waits, new readers queue behind it.")),
        h("h2", {}, "Who got the lock: fairness"),
        h("p", {}, "Jain's index of the median run, and in brackets the fewest and the most operations one goroutine did, as a share of an equal share. ",
          "A spinlock lets whoever is on a core win again. sync.Mutex lets a running goroutine take the lock ahead of parked waiters, and hands it over in order (starvation mode) only once a waiter has waited 1 ms, so it is not fair either at these timescales. ",
          "Only the strict turns of the condition variable share out evenly."),
        table(heads("Jain's index (fewest–most)"), r.primitives.map(row((pt) => `${pt.jain.toFixed(2)} (${pt.minShare.toFixed(2)}–${pt.maxShare.toFixed(2)})`)), "table-fairness"),
        h("h2", {}, "When to use which"),
        table(["Primitive", "For", "Against"], r.primitives.map((p) => [p.name, h("span", { class: "pros" }, p.pros), h("span", { class: "cons" }, p.cons)]), "table-pros"));
    },
  });

  root.append(
    h("h2", {}, "The lost update"),
    h("p", {}, "N goroutines each add 1 to a shared counter K times. ", h("code", {}, "x = x + 1"),
      " is two steps, a read and a write; when two goroutines read the same value, one of the two additions vanishes. ",
      "A mutex makes the pair one step for everyone else; an atomic add does it in one instruction. ",
      "(Go's race detector would rightly reject a plain ", h("code", {}, "x++"), " here, so the demo reads and writes with separate atomic loads and stores: the same two steps and the same race, though the atomic store (an XCHG on amd64, which waits for the core's store buffer) changes how often the race loses an update.)"),
  );
  const card2 = h("div", { class: "card" });
  const out2 = h("div", { id: "result-lostupdate" });
  root.append(card2, out2);
  await panel(card2, "lostupdate", {
    onStart() { out2.replaceChildren(); },
    onResult(r) {
      const bars = h("div");
      const plain = r.counters[0], trials = plain.lostByTrial.length;
      out2.append(
        table(["Method", "Expected", "Got (median trial)", "Lost (median trial)", "Trials losing none", "Lost, fewest to most", "Time"], r.counters.map((c) => [c.method, fmtNum(c.expected),
          h("span", { class: c.lost ? "wrong" : "right" }, fmtNum(c.got)), c.lost ? `${fmtNum(c.lost)} (${c.lostPercent.toFixed(2)} %)` : "0",
          `${c.zeroTrials} of ${c.lostByTrial.length}`, `${fmtNum(c.minLost)} – ${fmtNum(c.maxLost)}`, fmtNs(c.ns)]), "table-lostupdate"),
        h("p", { id: "lostupdate-verdict", class: plain.maxLost ? "wrong" : "note" },
          plain.maxLost === 0
            ? `Read, then write lost nothing in all ${trials} trials here. That does not make it safe: the race is still there, and a busier machine, more cores or real work between the read and the write will show it.`
            : plain.zeroTrials
              ? `Read, then write lost nothing in ${plain.zeroTrials} of ${trials} trials, and up to ${fmtNum(plain.maxLost)} updates in the others: one clean run proves nothing.`
              : `Read, then write lost updates in every one of ${trials} trials, from ${fmtNum(plain.minLost)} to ${fmtNum(plain.maxLost)}.`),
        bars);
      barChart(bars, { title: "Updates lost in each trial", categories: plain.lostByTrial.map((_, i) => `trial ${i + 1}`),
        series: r.counters.map((c) => ({ name: c.method, values: c.lostByTrial })), y: { label: "Lost updates", unit: "" } });
    },
  });
}
