// Chapter 8: the flash sale, live. The real shop, a crowd from the load
// engine, an optional crash, and the books checked afterwards.
import { panel, h, onFrame, table } from "./run.js";
import { lineChart, fmtNum } from "./chart.js";

// The guide's five phases of the flash-sale design, as settings of the
// same sale. Each names what it shows.
const presets = [
  { id: "phase1", name: "1 · Read, then write", strategy: "naive", procs: 1, gap: 20,
    shows: "One process reads the stock, works, then writes the order: two buyers read the same last unit, both buy it." },
  { id: "phase2", name: "2 · A lock in the process", strategy: "mutex", procs: 1, gap: 20,
    shows: "A mutex around read-and-write: correct in one process, and every buyer waits for the one before." },
  { id: "phase3", name: "3 · The same lock, four processes", strategy: "mutex", procs: 4, gap: 20,
    shows: "Each process has its own lock: they protect nothing from each other, and the sale oversells again." },
  { id: "phase4", name: "4 · Let the database decide", strategy: "atomic", procs: 2, gap: 0,
    shows: "One conditional UPDATE per order (stock >= 1): correct in any number of processes, one hot row for all." },
  { id: "phase5", name: "5 · Reserve, queue, group commit", strategy: "reserve", procs: 1, gap: 0,
    shows: "Stock reserved in memory, orders queued and committed in batches: correct and fast; a crash loses no acknowledged order." },
];

export async function flashsale(root) {
  root.append(
    h("h1", {}, "8 · The flash sale, live"),
    h("p", {}, h("span", { class: "real-label" }, "REAL MEASUREMENT"),
      " This runs the real shop (", h("code", {}, "stampede shop"), ", on a temporary SQLite file) with the strategy and processes you pick, ",
      "and the load engine brings the buyers, each with its own Idempotency-Key, retrying what a crash leaves unanswered. ",
      "Afterwards the books are checked as ", h("code", {}, "stampede verify"), " checks them: units sold against stock, every acknowledged order stored once, ",
      "the per-user limit, and whether every answer and every read of the stock fit one order of events (linearizability)."),
    h("p", {}, "The guide's five phases are presets. Pick one, then Run; or set the form yourself. With ",
      h("em", {}, "Crash halfway"), " a worker process, or the whole shop, is killed with SIGKILL in the middle of the sale."),
  );
  const presetBar = h("div", { class: "presets", id: "flashsale-presets" });
  const shows = h("p", { class: "note", id: "flashsale-shows" });
  const card = h("div", { class: "card" });
  const live = h("div", { id: "flashsale-live" });
  const stockChart = h("div", { id: "flashsale-stock" });
  const latency = h("div", { id: "flashsale-latency" });
  const out = h("div", { id: "result-flashsale" });
  root.append(presetBar, shows, card, live, stockChart, latency, out);

  const series = {};
  const answers = ["acknowledged", "sold out", "over the limit", "failed"];
  const draw = onFrame(() => {
    lineChart(live, { title: "Answers per second",
      series: answers.filter((n) => series[n]).map((n) => ({ name: n, points: series[n] })),
      x: { label: "Time", unit: "s" }, y: { label: "Answers", unit: "/s" } });
    if (series.stock) {
      lineChart(stockChart, { title: "Stock, as a reader sees it (below zero: oversold)",
        series: [{ name: "stock", points: series.stock }], x: { label: "Time", unit: "s" }, y: { label: "Units", unit: "" } });
    }
    if (series.p50) {
      lineChart(latency, { title: "Time to an answer, each second (a purchase's retries are separate answers)",
        series: ["p50", "p99"].filter((n) => series[n]).map((n) => ({ name: n, points: series[n].map(([x, ms]) => [x, ms * 1e6]) })),
        x: { label: "Time", unit: "s" }, y: { label: "Latency", unit: "ns" } });
    }
  });
  const p = await panel(card, "flashsale", {
    runLabel: "Run the sale",
    onStart() {
      out.replaceChildren(); live.replaceChildren(); stockChart.replaceChildren(); latency.replaceChildren();
      for (const k in series) delete series[k];
      // The sale starts from the whole stock and no answers.
      series.stock = [[0, Number(document.getElementById("p-flashsale-stock").value)]];
      for (const n of answers) series[n] = [[0, 0]];
    },
    onEvent(e) {
      if (e.kind !== "point") return;
      // A zero is left out of the event's JSON.
      (series[e.series] ||= []).push([e.x || 0, e.y || 0]);
      draw();
    },
    onResult(r) { out.append(...books(r)); },
  });
  for (const pr of presets) {
    presetBar.append(h("button", { type: "button", id: `preset-${pr.id}`, onclick: () => {
      p.setParam("strategy", pr.strategy);
      p.setParam("procs", pr.procs);
      p.setParam("gap", pr.gap);
      p.setParam("fault", "none");
      shows.textContent = pr.shows;
    } }, pr.name));
  }
}

// books renders the verdict: the headline, the invariants and the counts.
function books(r) {
  const rep = r.report;
  const o = rep.outcomes;
  const headline = r.oversold > 0
    ? h("p", { class: "verdict wrong", id: "flashsale-verdict" }, `OVERSOLD by ${fmtNum(r.oversold)}: ${fmtNum(o.stored_orders)} orders stored for ${fmtNum(r.initial)} units.`)
    : h("p", { class: "verdict right", id: "flashsale-verdict" }, `Sold ${fmtNum(o.stored_orders)} of ${fmtNum(r.initial)}: nothing oversold.`);
  const failed = rep.invariants.filter((i) => i.verdict === "FAIL");
  return [
    headline,
    h("p", { id: "flashsale-summary" }, failed.length
      ? `${failed.length} of ${rep.invariants.length} checks failed: ${failed.map((i) => i.name).join("; ")}.`
      : `All ${rep.invariants.length} checks held.`),
    table(["Check", "Expected", "Observed", "Verdict"], rep.invariants.map((i) => [i.name, i.expected, h("span", {}, i.observed),
      h("span", { class: i.verdict === "pass" ? "right" : "wrong" }, i.verdict)]), "table-flashsale"),
    table(["Purchases", "Acknowledged", "Sold out", "Over the limit", "Unsettled", "Other", "Retried", "Orders stored"],
      [[o.purchases, o.acknowledged, o.sold_out, o.limit_exceeded, o.unsettled, o.other, o.retried, o.stored_orders].map((v) => fmtNum(v))], "table-flashsale-outcomes"),
    ...rep.faults.map((f) => h("p", { class: "note" }, f.error ? `${f.kind}: ${f.error}` : `${f.kind} at ${(f.start_ns / 1e9).toFixed(2)} s, back at ${(f.end_ns / 1e9).toFixed(2)} s.`)),
  ];
}
