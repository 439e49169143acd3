// Chapter 8: the flash sale, live. The real shop, a crowd from the load
// engine, an optional crash, and the books checked afterwards.
import { panel, h, onFrame, table } from "./run.js";
import { lineChart, fmtNum } from "./chart.js";

// The guide's five phases of the flash-sale design (its evolution table),
// as settings of the same sale, with what the guide says of each. A phase
// may need Redis (the lab's --redis, or a private redis-server).
const presets = [
  { id: "phase1", phase: "1 · Monolith", name: "1 · One process, one buyer at a time", strategy: "mutex", procs: 1, gap: 5,
    model: "single process, single thread", dau: "1K", problem: "cannot handle concurrency",
    shows: "One process serves one purchase at a time (here, a lock around the whole purchase): nothing is oversold, and every buyer waits for all those before." },
  { id: "phase2", phase: "2 · Multi-process", name: "2 · Four processes, read then write", strategy: "naive", procs: 4, gap: 20,
    model: "multi-process, synchronous", dau: "10K", problem: "data races, overselling",
    shows: "Four worker processes each read the stock, work, then write: two buyers read the same last unit, and both buy it." },
  { id: "phase2lock", phase: "2 · Multi-process + distributed lock", name: "2 · Four processes, a Redis lock", strategy: "redis-lock", procs: 4, gap: 5,
    model: "multi-process + distributed lock", dau: "10K", problem: "(the guide's fix for overselling)",
    shows: "The same four processes take a lock in Redis around read-and-write: correct across processes, and every purchase in the shop waits its turn for one lock." },
  { id: "phase3", phase: "3 · Multi-threaded", name: "3 · Threads and a lock", strategy: "mutex", procs: 1, gap: 0,
    model: "multi-threaded + locks", dau: "50K", problem: "context-switch overhead, deadlocks",
    shows: "Many threads (here goroutines) in one process and a lock held only for the read and the write: correct in one process, and the lock is the queue." },
  { id: "phase4", phase: "4 · Coroutine", name: "4 · Coroutines that still read, then write", strategy: "naive", procs: 1, gap: 20,
    model: "async I/O", dau: "100K+", problem: "code complexity, debugging",
    shows: "Coroutines (goroutines) serve thousands at once, but the handler still reads the stock, awaits, then writes: it oversells in a single process." },
  { id: "phase5", phase: "5 · Hybrid", name: "5 · Reserve, queue, group commit", strategy: "reserve", procs: 4, gap: 0,
    model: "multi-process + coroutines", dau: "1M+", problem: "architectural complexity",
    shows: "Stock reserved atomically in Redis, orders queued and committed in batches by every process: correct, fast, and a crash loses no acknowledged order." },
  { id: "database", phase: "Also: let the database decide", name: "Also: one conditional UPDATE", strategy: "atomic", procs: 2, gap: 0,
    model: "multi-process, the store decides", dau: "", problem: "one hot row for every buyer",
    shows: "One conditional UPDATE per order (stock >= 1): correct in any number of processes, with every buyer queueing on one row." },
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
      h("em", {}, "Crash halfway"), " a worker process, or the whole shop, is killed with SIGKILL in the middle of the sale. ",
      "Phases with Redis use the lab's (", h("code", {}, "stampede lab --redis redis://…"), ") or start a private redis-server for the sale."),
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
    onResult(r) {
      out.append(...books(r));
      record(r);
    },
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

  // The guide's evolution table, with what each phase did here beside it.
  const evolution = h("div", { id: "flashsale-evolution" });
  const measured = {}; // by preset id, or "strategy/procs/gap" for the learner's own
  const peaks = {}; // by preset id, from the sweep below
  root.append(h("h2", {}, "The guide's evolution table, measured"),
    h("p", {}, "The guide's claims on the left; on the right, what each phase did in your last sale with its settings (run a preset to fill its row). ",
      "A phase that oversells is not a step up, whatever number of users the guide gives it."), evolution);
  const drawEvolution = () => {
    const own = Object.values(measured).filter((m) => !m.preset);
    const rows = [...presets.map((pr) => [pr, measured[pr.id]]), ...own.map((m) => [null, m])];
    evolution.replaceChildren(table(["Phase", "Model (guide)", "Users (guide)", "Core problem (guide)", "Here: strategy × processes", "Here: p50 / p99", "Here: the books", "Here: peak (sweep)"],
      rows.map(([pr, m]) => [h("span", {}, pr ? pr.phase : "Your settings"), pr ? pr.model : "", pr ? pr.dau : "", pr ? pr.problem : "",
        m ? `${m.strategy} × ${m.procs}${m.gap ? `, ${m.gap} ms work` : ""}` : pr ? `${pr.strategy} × ${pr.procs}` : "",
        m ? `${m.p50.toFixed(1)} ms / ${m.p99.toFixed(1)} ms` : "not run yet",
        m ? h("span", { class: m.oversold ? "wrong" : "right" }, m.oversold ? `OVERSOLD by ${fmtNum(m.oversold)}` : `balanced (${m.held} of ${m.checks} checks)`) : "",
        (pr && peaks[pr.id]) || ""]),
      "table-evolution"));
  };
  const record = (r) => {
    const gap = Number(document.getElementById("p-flashsale-gap").value);
    const pr = presets.find((q) => q.strategy === r.strategy && q.procs === r.procs && q.gap === gap);
    const failed = r.report.invariants.filter((i) => i.verdict === "FAIL").length;
    measured[pr ? pr.id : `${r.strategy}/${r.procs}/${gap}`] = { preset: pr ? pr.id : "", strategy: r.strategy, procs: r.procs, gap,
      p50: r.p50Ms || 0, p99: r.p99Ms || 0, oversold: r.oversold || 0, held: r.report.invariants.length - failed, checks: r.report.invariants.length };
    drawEvolution();
  };
  drawEvolution();

  // Where the chosen strategy peaks: the load engine's sweep.
  root.append(h("h2", {}, "Where does it peak, and will it hold the crowd?"),
    h("p", {}, "The same shop, a product with stock for the whole sweep, and 1, 2, 4, … buyers at once, each step measured several times; ",
      "each step is checked (errors, Little's law, a load generator that ran out of CPU) before the Universal Scalability Law is fitted with a bootstrap interval: ",
      "σ is the share of the work that waits on something serial (a lock, a hot row), κ the crosstalk that makes more buyers slower than fewer. ",
      "Then a plan for the crowd: measured or interpolated inside the sweep, extrapolated up to 4× past it, and past that only the operational laws' bounds, labelled so. ",
      "The buyers run in this lab, on the same cores as the shop: the capacity is this machine's, shop and buyers together."));
  const sweepCard = h("div", { class: "card" });
  const sweepChart = h("div", { id: "flashsale-sweep-chart" });
  const sweepOut = h("div", { id: "result-flashsale-sweep" });
  root.append(sweepCard, sweepChart, sweepOut);
  const swept = [];
  const drawSweep = onFrame(() => lineChart(sweepChart, { title: "Orders per second against buyers at once",
    series: [{ name: "measured", points: swept.slice() }], x: { label: "Buyers at once", log: true }, y: { label: "Orders", unit: "/s" } }));
  await panel(sweepCard, "flashsale-sweep", {
    runLabel: "Sweep",
    onStart() { swept.length = 0; sweepChart.replaceChildren(); sweepOut.replaceChildren(); },
    onEvent(e) { if (e.kind === "point") { swept.push([e.x, e.y]); drawSweep(); } },
    onResult(r) {
      const c = r.curve, plan = r.plan;
      const pts = r.points.map((q) => [q.concurrency, q.rps]);
      const series = [{ name: "measured (median)", points: pts }];
      if (c && c.usl) {
        // The fitted law, drawn only as far as it is trusted: 4× the sweep.
        const u = c.usl, lo = Math.min(...pts.map((q) => q[0])), hi = 4 * c.measured_concurrency_max;
        const curve = [];
        for (let n = lo; n <= hi; n *= 1.15) curve.push([n, u.lambda * n / (1 + u.sigma * (n - 1) + u.kappa * n * (n - 1))]);
        series.push({ name: "the law, fitted (to 4× the sweep)", points: curve });
      }
      const ticks = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096].filter((n) => n <= Math.max(...series.flatMap((se) => se.points.map((q) => q[0]))));
      lineChart(sweepChart, { title: "Orders per second against buyers at once", series, x: { label: "Buyers at once", log: true, ticksAt: ticks }, y: { label: "Orders", unit: "/s" } });
      const runs = (q) => q.rps_runs.length > 1 ? `${fmtNum(Math.min(...q.rps_runs))}–${fmtNum(Math.max(...q.rps_runs))}` : fmtNum(q.rps_runs[0]);
      sweepOut.append(
        table(["Buyers at once", "Orders/s", "Runs", "p50", "p99", "Errors", "Left out because"], r.points.map((q) => [fmtNum(q.concurrency), fmtNum(q.rps), runs(q),
          `${(q.latency_seconds.p50 * 1e3).toFixed(1)} ms`, `${(q.latency_seconds.p99 * 1e3).toFixed(1)} ms`, fmtNum(q.errors || 0), [...(q.flags || []), ...(q.notes || [])].join("; ")]), "table-flashsale-sweep"),
        c && c.usl ? table(["σ (contention)", "κ (coherency)", "R²", "Peak", "Capacity measured"], [[
          `${c.usl.sigma.toPrecision(3)} [${c.sigma_ci[0].toPrecision(3)}–${c.sigma_ci[1].toPrecision(3)}]`,
          `${c.usl.kappa.toPrecision(3)} [${c.kappa_ci[0].toPrecision(3)}–${c.kappa_ci[1].toPrecision(3)}]`, c.usl.r2.toFixed(3),
          c.peak_concurrency ? `${fmtNum(c.peak_concurrency)} buyers, ${fmtNum(c.peak_rps)}/s` : "none in sight",
          `${fmtNum(c.capacity_rps)}/s at ${fmtNum(c.capacity_concurrency)}`]], "table-flashsale-usl") : "",
        plan ? h("p", { id: "flashsale-sweep-plan" }, `Plan for ${fmtNum(plan.users)} buyers at once: ${plan.verdict.toUpperCase()} (${plan.basis}).`) : "",
        h("p", { id: "flashsale-sweep-verdict" }, r.verdict.join(" ")));
      // The sweep's capacity joins the evolution table's row for the strategy.
      const gap = Number(document.getElementById("p-flashsale-sweep-gap").value);
      const pr = presets.find((q) => q.strategy === r.strategy && q.procs === r.procs && q.gap === gap);
      if (pr) {
        peaks[pr.id] = c ? (c.peak_concurrency && c.peak_concurrency <= c.measured_concurrency_max
          ? `${fmtNum(c.peak_rps)}/s at ${fmtNum(c.peak_concurrency)} buyers` : `${fmtNum(c.capacity_rps)}/s measured, no peak in the sweep`) : "no fit";
        drawEvolution();
      }
    },
  });
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
