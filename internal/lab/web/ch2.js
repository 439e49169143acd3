// Chapter 2: who runs next. A scheduler simulation, stepped tick by tick,
// and beside it the kernel's real scheduler, watched through /proc.
import { panel, h, onFrame, table } from "./run.js";
import { barChart, gantt, histogram, lineChart, fmtNum } from "./chart.js";

const names = {
  fcfs: "First come, first served", sjf: "Shortest job first", srtf: "Shortest remaining time first",
  prio: "Priority (non-preemptive)", "prio-p": "Priority (preemptive)", rr: "Round robin", mlfq: "Multi-level feedback queue", lottery: "Lottery",
};

export async function scheduling(root) {
  root.append(
    h("h1", {}, "2 · Who runs next: CPU scheduling"),
    h("p", {}, h("span", { class: "sim-label" }, "SIMULATION"),
      " Linux does let you change the policy of a thread (SCHED_FIFO and SCHED_RR with ", h("code", {}, "chrt"), ", or a whole scheduler written in BPF with sched_ext), ",
      "and SCHED_FIFO is first come, first served within one priority, as SCHED_RR is round robin; but there is no SJF, MLFQ or lottery to switch to, and the real policies need root and a machine you can afford to stall. So this part is a model: a tick-by-tick simulator with the textbook rules. Its numbers come from the model, not from this machine."),
    h("p", {}, "Write a workload (one task per line: name, arrival, CPU burst, priority, lottery tickets, and optionally \"does I/O every n ticks for m ticks\"), or let a seed invent one. ",
      "Lower priority numbers are more urgent. Waiting time is time spent ready but not running; turnaround is finish minus arrival; response is first run minus arrival."),
  );
  const card = h("div", { class: "card" });
  const out = h("div", { id: "result-sched" });
  root.append(card, out);
  let player = null;
  const p = await panel(card, "sched", {
    runLabel: "Simulate",
    onStart() { if (player) player(); out.replaceChildren(); },
    onResult(r) {
      p.setParam("workload", r.workload);
      player = renderSim(out, r);
    },
  });
  const gen = h("button", { type: "button", id: "sched-generate" }, "New workload from the seed");
  gen.addEventListener("click", () => { p.setParam("workload", ""); p.run(); });
  p.form.querySelector(".actions").append(gen);
  // The box holds the last workload so it can be edited; a new seed or
  // task count means a new generated workload, not the old one replayed.
  for (const name of ["seed", "tasks"]) {
    p.form.querySelector(`[name="${name}"]`).addEventListener("input", () => p.setParam("workload", ""));
  }

  root.append(
    h("h2", {}, "The real scheduler, watched"),
    h("p", {}, h("span", { class: "real-label" }, "REAL MEASUREMENT"),
      " Now the real thing: N threads that only spin, with more threads than cores. Linux's scheduler shares the cores between them; for each thread the kernel counts, in ",
      h("code", {}, "/proc/self/task/TID/schedstat"), ", the time it ran, the time it sat runnable waiting for a core, and how many timeslices it got."),
  );
  const card2 = h("div", { class: "card" });
  const live = h("div", { id: "schedstat-live" });
  const out2 = h("div", { id: "result-schedstat" });
  root.append(card2, live, out2);
  const series = {};
  // Up to 12 threads, a line each; more, and the lines would be a blur:
  // the fewest, the median and the most CPU time among them instead.
  const spread = () => {
    const all = Object.values(series), n = Math.min(...all.map((p) => p.length));
    const at = (i, f) => { const v = all.map((p) => p[i][1]).sort((a, b) => a - b); return [all[0][i][0], f(v)]; };
    const pick = (f) => Array.from({ length: n }, (_, i) => at(i, f));
    return [{ name: "most", points: pick((v) => v[v.length - 1]) }, { name: "median", points: pick((v) => v[v.length >> 1]) }, { name: "fewest", points: pick((v) => v[0]) }];
  };
  const drawLive = onFrame(() => {
    const many = Object.keys(series).length > 12;
    lineChart(live, { title: many ? `CPU time so far: the most, the median and the fewest of ${Object.keys(series).length} threads` : "CPU time each thread has had so far",
      series: many ? spread() : Object.entries(series).map(([name, points]) => ({ name, points })),
      x: { label: "Elapsed (ms)" }, y: { label: "On CPU (ms)", unit: "ms" } });
  });
  await panel(card2, "schedstat", {
    onStart() { out2.replaceChildren(); for (const k in series) delete series[k]; },
    onEvent(e) {
      if (e.kind !== "point") return;
      (series[e.series] ||= []).push([e.x, e.y]);
      drawLive();
    },
    onResult(r) {
      const threads = r.threads.map((_, i) => "T" + (i + 1));
      const bars = h("div");
      out2.append(h("p", { class: "card users", id: "schedstat-summary" }, r.summary), bars,
        table(["Thread", "TID", "On CPU", "Waiting", "Timeslices", "Average slice", "Involuntary switches", "Share of a core"],
          r.threads.map((t, i) => [threads[i], String(t.tid), (t.runNs / 1e6).toFixed(1) + " ms", (t.waitNs / 1e6).toFixed(1) + " ms", fmtNum(t.slices),
            (t.avgSliceNs / 1e3).toFixed(0) + " µs", fmtNum(t.involuntary), t.sharePercent.toFixed(1) + " %"]), "table-schedstat"));
      if (r.threads.length > 16) {
        histogram(bars, { title: `How the ${r.threads.length} threads shared the cores: share of a core each got`, values: r.threads.map((t) => t.sharePercent),
          x: { label: "Share of a core (%)", fmt: (v) => v.toFixed(0) + " %" } });
      } else {
        barChart(bars, { title: "Running versus waiting for a core, per thread", categories: threads,
          series: [{ name: "on CPU", values: r.threads.map((t) => t.runNs / 1e6) }, { name: "runnable, waiting", values: r.threads.map((t) => t.waitNs / 1e6) }],
          y: { label: "Time (ms)", unit: "ms" } });
      }
    },
  });
}

// notes says what an algorithm needs that a real system lacks.
const notes = {
  sjf: "SJF needs every burst's length before it runs; no real scheduler knows it. It is the yardstick (the least average waiting of any non-preemptive order), and real schedulers guess the next burst from the past ones.",
  srtf: "SRTF needs every burst's length before it runs; no real scheduler knows it. It is the yardstick for preemptive scheduling, and real schedulers estimate the remaining time from past bursts.",
  lottery: "Each draw is shown at the tick it happens: a ticket among all the ready tasks' tickets, counted in queue order.",
  mlfq: "The allotment is how long a task may use a level, over any number of turns, before it moves down; the time slice is how long one turn lasts (0: the whole allotment).",
};

// ioStretches turns each tick's waiting-on-I/O list into one stretch per
// task and wait.
function ioStretches(ticks) {
  const open = {}, out = [];
  ticks.forEach((tk, t) => {
    for (const name of tk.waiting) { if (!(name in open)) open[name] = t; }
    for (const name of Object.keys(open)) {
      if (!tk.waiting.includes(name)) { out.push({ task: name, start: open[name], end: t }); delete open[name]; }
    }
  });
  for (const [name, start] of Object.entries(open)) out.push({ task: name, start, end: ticks.length });
  return out;
}

// waitedBy counts, for each task, the ticks up to and including `at` it
// spent ready but not running.
function waitedBy(ticks, at) {
  const w = {};
  for (const tk of ticks.slice(0, at + 1)) for (const level of tk.ready) for (const name of level) w[name] = (w[name] || 0) + 1;
  return w;
}

// renderSim draws one or two simulated runs with a shared tick cursor and
// returns a function that stops playing. With "Predict first" the future
// stays hidden and the results are asked for before they are shown.
function renderSim(out, rep) {
  const tasks = rep.tasks.map((t) => t.name);
  const arrivals = rep.tasks.map((t) => ({ task: t.name, at: t.arrival }));
  const last = Math.max(...rep.runs.map((r) => r.ticks.length)) - 1;
  let at = 0, timer = null, predicting = false;
  const slider = h("input", { type: "range", min: 0, max: last, value: 0, id: "sched-tick", "aria-label": "Tick" });
  const label = h("span", { class: "status" });
  const play = h("button", { type: "button", id: "sched-play" }, "▶ Play");
  const predict = h("input", { type: "checkbox", id: "sched-predict" });
  const step = (d) => () => { at = Math.min(last, Math.max(0, at + d)); draw(); };
  const stepper = h("div", { class: "stepper" },
    h("button", { type: "button", onclick: () => { at = 0; draw(); } }, "Start"),
    h("button", { type: "button", id: "sched-back", onclick: step(-1) }, "◀ Step"),
    play,
    h("button", { type: "button", id: "sched-step", onclick: step(1) }, "Step ▶"),
    h("button", { type: "button", onclick: () => { at = last; draw(); } }, "End"),
    slider, label,
    h("label", { title: "hide the future and the results: write down when each task finishes, then Reveal" }, predict, " Predict first"));
  slider.addEventListener("input", () => { at = Number(slider.value); draw(); });
  play.addEventListener("click", () => {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "▶ Play"; return; }
    if (at >= last) at = 0;
    play.textContent = "⏸ Pause";
    timer = setInterval(() => { if (at >= last) { clearInterval(timer); timer = null; play.textContent = "▶ Play"; return; } at++; draw(); }, 350);
  });
  const panes = rep.runs.map((r) => {
    const alg = r.config.algorithm;
    const chart = h("div"), queues = h("div", { class: "queues" }), results = h("div");
    const pane = h("div", { class: "card", "data-algorithm": alg },
      h("h3", {}, names[alg] || alg, " ", h("span", { class: "sim-label" }, "SIMULATION")),
      notes[alg] ? h("p", { class: "note" }, notes[alg]) : "",
      chart, queues, results,
      h("p", { class: "status" }, `${r.switches} dispatches of a different task.`));
    return { r, alg, chart, queues, results, pane, io: ioStretches(r.ticks), guesses: {} };
  });
  const compare = h("div");
  out.append(stepper, h("div", { class: "side" }, panes.map((p) => p.pane)), compare);
  barChart(compare, { title: "Averages, side by side", categories: ["waiting", "turnaround", "response"],
    series: rep.runs.map((r) => ({ name: names[r.config.algorithm] || r.config.algorithm, values: [r.avgWaiting, r.avgTurnaround, r.avgResponse] })),
    y: { label: "Ticks", unit: "ticks" } });
  predict.addEventListener("change", () => {
    predicting = predict.checked;
    if (predicting) { at = 0; for (const p of panes) p.revealed = false; }
    tables();
    draw();
  });

  // tables shows each run's results, or in predict mode a box per task
  // for its finishing tick and a Reveal button.
  function tables() {
    for (const p of panes) {
      const r = p.r;
      if (predicting && !p.revealed) {
        const boxes = r.tasks.map((t) => h("input", { type: "number", min: t.arrival + 1, step: 1, "data-task": t.name, "aria-label": `${t.name} finishes at`,
          value: p.guesses[t.name] ?? "", oninput: (e) => { p.guesses[t.name] = e.target.value; } }));
        const reveal = h("button", { type: "button", class: "reveal", "data-reveal": p.alg, onclick: () => { p.revealed = true; at = last; tables(); draw(); } }, "Reveal");
        p.results.replaceChildren(
          table(["Task", "Arrival", "Burst", "Finishes at (your guess)"], r.tasks.map((t, i) => [t.name, String(t.arrival), String(t.burst), h("span", { class: "predict-cell" }, boxes[i])]), "table-sched-" + p.alg),
          h("p", {}, "When does each task finish? Step if you like: what lies ahead stays hidden. ", reveal));
        continue;
      }
      const guess = (t) => {
        const g = p.guesses[t.name];
        if (g === undefined || g === "") return String(t.finish);
        const right = Number(g) === t.finish;
        return h("span", { class: right ? "predict-right" : "predict-wrong" }, `${t.finish} (you: ${g} ${right ? "✓" : "✗"})`);
      };
      const guessed = Object.values(p.guesses).filter((g) => g !== "").length;
      const score = guessed ? r.tasks.filter((t) => Number(p.guesses[t.name]) === t.finish).length : 0;
      p.results.replaceChildren(
        table(["Task", "Arrival", "Burst", "First run", "Finish", "Waiting", "Turnaround", "Response"],
          r.tasks.map((t) => [t.name, String(t.arrival), String(t.burst), String(t.firstRun), guess(t), String(t.waiting), String(t.turnaround), String(t.response)])
            .concat([["average", "", "", "", "", r.avgWaiting.toFixed(2), r.avgTurnaround.toFixed(2), r.avgResponse.toFixed(2)]]), "table-sched-" + p.alg),
        guessed ? h("p", { class: "status", id: "sched-score-" + p.alg }, `You placed ${score} of ${r.tasks.length} finishing ticks right.`) : "");
    }
  }

  function draw() {
    slider.value = at;
    label.textContent = `tick ${at} of ${last}`;
    for (const p of panes) {
      const levels = p.r.config.quanta ? p.r.config.quanta.length : 1;
      const hide = predicting && !p.revealed;
      gantt(p.chart, { title: "Gantt chart (▼ arrival, thin grey bar: waiting on I/O" + (levels > 1 ? ", L: MLFQ level" : "") + ")", tasks,
        slices: p.r.slices.map((s) => ({ ...s, levels })), at: Math.min(at, p.r.ticks.length), arrivals, io: p.io, hideFuture: hide });
      const tk = p.r.ticks[Math.min(at, p.r.ticks.length - 1)];
      const q = (title, items) => h("div", { class: "q" }, h("strong", {}, title + ": "), items.length ? items.map((n) => h("span", {}, n)) : "empty");
      const waited = waitedBy(p.r.ticks, Math.min(at, p.r.ticks.length - 1));
      const d = tk.draw;
      let from = 0;
      p.queues.replaceChildren(
        h("div", { class: "q" }, h("strong", {}, "Running: "), tk.running ? h("span", {}, tk.running) : "idle"),
        ...tk.ready.map((items, l) => q(tk.ready.length > 1 ? `Ready, level ${l}` : "Ready", items)),
        q("Waiting on I/O", tk.waiting),
        d ? h("div", { class: "q", id: "sched-draw-" + p.alg }, h("strong", {}, "Lottery draw: "),
          `ticket ${d.ticket} of ${d.total} (` + d.holders.map((n, i) => { const s = `${n} ${from}–${from + d.tickets[i] - 1}`; from += d.tickets[i]; return s; }).join(", ") + `): ${d.winner} runs`) : "",
        h("div", { class: "q" }, h("strong", {}, "Waited so far: "), tasks.map((n) => h("span", {}, `${n} ${waited[n] || 0}`))));
    }
  }
  tables();
  draw();
  return () => { if (timer) clearInterval(timer); };
}
