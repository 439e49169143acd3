// Chapter 2: who runs next. A scheduler simulation, stepped tick by tick,
// and beside it the kernel's real scheduler, watched through /proc.
import { panel, h, onFrame, table } from "./run.js";
import { barChart, gantt, lineChart, fmtNum } from "./chart.js";

const names = {
  fcfs: "First come, first served", sjf: "Shortest job first", srtf: "Shortest remaining time first",
  prio: "Priority (non-preemptive)", "prio-p": "Priority (preemptive)", rr: "Round robin", mlfq: "Multi-level feedback queue", lottery: "Lottery",
};

export async function scheduling(root) {
  root.append(
    h("h1", {}, "2 · Who runs next: CPU scheduling"),
    h("p", {}, h("span", { class: "sim-label" }, "SIMULATION"),
      " Linux does let you change the policy of a thread (SCHED_FIFO and SCHED_RR with ", h("code", {}, "chrt"), ", or a whole scheduler written in BPF with sched_ext), ",
      "but not to FCFS, SJF, MLFQ or a lottery, and not without root and a machine you can afford to stall; so this part is a model: a tick-by-tick simulator with the textbook rules. Its numbers come from the model, not from this machine."),
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
  const drawLive = onFrame(() => lineChart(live, { title: "CPU time each thread has had so far", series: Object.entries(series).map(([name, points]) => ({ name, points })),
    x: { label: "Elapsed (ms)" }, y: { label: "On CPU (ms)", unit: "ms" } }));
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
      barChart(bars, { title: "Running versus waiting for a core, per thread", categories: threads,
        series: [{ name: "on CPU", values: r.threads.map((t) => t.runNs / 1e6) }, { name: "runnable, waiting", values: r.threads.map((t) => t.waitNs / 1e6) }],
        y: { label: "Time (ms)", unit: "ms" } });
    },
  });
}

// renderSim draws one or two simulated runs with a shared tick cursor and
// returns a function that stops playing.
function renderSim(out, rep) {
  const tasks = rep.tasks.map((t) => t.name);
  const last = Math.max(...rep.runs.map((r) => r.ticks.length)) - 1;
  let at = 0, timer = null;
  const slider = h("input", { type: "range", min: 0, max: last, value: 0, id: "sched-tick", "aria-label": "Tick" });
  const label = h("span", { class: "status" });
  const play = h("button", { type: "button", id: "sched-play" }, "▶ Play");
  const step = (d) => () => { at = Math.min(last, Math.max(0, at + d)); draw(); };
  const stepper = h("div", { class: "stepper" },
    h("button", { type: "button", onclick: () => { at = 0; draw(); } }, "Start"),
    h("button", { type: "button", id: "sched-back", onclick: step(-1) }, "◀ Step"),
    play,
    h("button", { type: "button", id: "sched-step", onclick: step(1) }, "Step ▶"),
    h("button", { type: "button", onclick: () => { at = last; draw(); } }, "End"),
    slider, label);
  slider.addEventListener("input", () => { at = Number(slider.value); draw(); });
  play.addEventListener("click", () => {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "▶ Play"; return; }
    if (at >= last) at = 0;
    play.textContent = "⏸ Pause";
    timer = setInterval(() => { if (at >= last) { clearInterval(timer); timer = null; play.textContent = "▶ Play"; return; } at++; draw(); }, 350);
  });
  const panes = rep.runs.map((r) => {
    const chart = h("div"), queues = h("div", { class: "queues" });
    const pane = h("div", { class: "card", "data-algorithm": r.config.algorithm },
      h("h3", {}, names[r.config.algorithm] || r.config.algorithm, " ", h("span", { class: "sim-label" }, "SIMULATION")),
      chart, queues,
      table(["Task", "Arrival", "Burst", "First run", "Finish", "Waiting", "Turnaround", "Response"],
        r.tasks.map((t) => [t.name, String(t.arrival), String(t.burst), String(t.firstRun), String(t.finish), String(t.waiting), String(t.turnaround), String(t.response)])
          .concat([["average", "", "", "", "", r.avgWaiting.toFixed(2), r.avgTurnaround.toFixed(2), r.avgResponse.toFixed(2)]]), "table-sched-" + r.config.algorithm),
      h("p", { class: "status" }, `${r.switches} dispatches of a different task.`));
    return { r, chart, queues, pane };
  });
  const compare = h("div");
  out.append(stepper, h("div", { class: "side" }, panes.map((p) => p.pane)), compare);
  barChart(compare, { title: "Averages, side by side", categories: ["waiting", "turnaround", "response"],
    series: rep.runs.map((r) => ({ name: names[r.config.algorithm] || r.config.algorithm, values: [r.avgWaiting, r.avgTurnaround, r.avgResponse] })),
    y: { label: "Ticks", unit: "ticks" } });
  function draw() {
    slider.value = at;
    label.textContent = `tick ${at} of ${last}`;
    for (const p of panes) {
      const levels = p.r.config.quanta ? p.r.config.quanta.length : 1;
      gantt(p.chart, { title: "Gantt chart", tasks, slices: p.r.slices.map((s) => ({ ...s, levels })), at: Math.min(at, p.r.ticks.length) });
      const tk = p.r.ticks[Math.min(at, p.r.ticks.length - 1)];
      const q = (title, items) => h("div", { class: "q" }, h("strong", {}, title + ": "), items.length ? items.map((n) => h("span", {}, n)) : "empty");
      p.queues.replaceChildren(
        h("div", { class: "q" }, h("strong", {}, "Running: "), tk.running ? h("span", {}, tk.running) : "idle"),
        ...tk.ready.map((items, l) => q(tk.ready.length > 1 ? `Ready, level ${l}` : "Ready", items)),
        q("Waiting on I/O", tk.waiting));
    }
  }
  draw();
  return () => { if (timer) clearInterval(timer); };
}
