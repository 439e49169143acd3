// Chapter 6: one core or many. The same tasks at GOMAXPROCS 1, 2, …, in
// child processes: CPU-bound work speeds up only with cores, waiting work
// overlaps on one; a runtime trace of each run shows who ran on which P.
import { panel, h, table, onFrame } from "./run.js";
import { gantt, lineChart, fmtNum } from "./chart.js";

const kindName = { cpu: "CPU-bound (hashing)", wait: "waiting (a timer, as for a network answer)" };

export async function parallel(root) {
  root.append(
    h("h1", {}, "6 · One core or many: concurrency and parallelism"),
    h("p", {}, h("span", { class: "real-label" }, "REAL MEASUREMENT"),
      " Concurrency is dealing with many things at once; parallelism is doing many things at once. ",
      "Here the same tasks run in child processes of this lab with ", h("code", {}, "GOMAXPROCS"), " set to 1, 2, … : the number of Ps, Go's licences to run Go code on a thread. ",
      "Tasks that hash need a core the whole time, so they finish sooner only with more Ps, and only up to the cores the machine has. ",
      "Tasks that wait need no core while they wait, so they all finish together even on one P: that is concurrency, and it is what a server with 100,000 mostly idle connections lives on."),
    h("p", {}, "Amdahl's law says a program with a serial fraction s can go at most 1/s times faster on any number of cores: S(p) = 1 / (s + (1 − s)/p). ",
      "Set a serial part (work done alone before the tasks start) and the fit below tries to find it again. Fitted to the whole run's speed-ups, as the law is usually applied, s also takes in what the cores lose to each other and uneven shares of the tasks, so equal independent tasks show an s above 0; fitted with the tasks' own measured speed-up, it recovers the serial part of the work. ",
      "Below the table, a ", h("code", {}, "runtime/trace"), " of each run, read with ", h("code", {}, "golang.org/x/exp/trace"), ": one lane per P, one colour per task, grey for the runtime's own goroutines."),
  );
  const card = h("div", { class: "card" });
  const live = h("div", { id: "parallel-live" });
  const out = h("div", { id: "result-parallel" });
  root.append(card, live, out);
  const series = {};
  let finished = false; // a frame queued before the result must not redraw
  const drawLive = onFrame(() => !finished && lineChart(live, { title: "Wall time so far", series: Object.entries(series).map(([name, points]) => ({ name: kindName[name], points })),
    x: { label: "GOMAXPROCS", ticksAt: [...new Set(Object.values(series).flat().map((p) => p[0]))] }, y: { label: "Wall time (ms)", unit: "ms" } }));
  await panel(card, "parallel", {
    onStart() { finished = false; out.replaceChildren(); live.replaceChildren(); for (const k in series) delete series[k]; },
    onEvent(e) {
      if (e.kind !== "point") return;
      (series[e.series] ||= []).push([e.x, e.y]);
      drawLive();
    },
    onResult(r) { finished = true; live.replaceChildren(); render(out, r); },
  });

  root.append(
    h("h2", {}, "Go's scheduler at work: G, M and P"),
    h("p", {}, h("span", { class: "real-label" }, "REAL MEASUREMENT"),
      " Go runs goroutines (G) on OS threads (M), and a thread may run Go code only while it holds a P; each P has a local run queue of up to 256 goroutines and a ",
      h("code", {}, "runnext"), " slot, and there is one global queue. A child of this lab now does what makes the scheduler move: one goroutine creates a burst of goroutines (all queued on its own P, so the other Ps must steal them), a few goroutines block in a system call while that work waits (so the runtime hands their P to another thread), and one goroutine spins in a loop with no function call (so the runtime must preempt it with a signal). ",
      "The child runs under ", h("code", {}, "runtime/trace"), " and ", h("code", {}, "GODEBUG=schedtrace=5"), ", which prints the run queues every 5 ms."),
  );
  const card3 = h("div", { class: "card" });
  const out3 = h("div", { id: "result-gmp" });
  root.append(card3, out3);
  await panel(card3, "gmp", {
    onStart() { out3.replaceChildren(); },
    onResult(r) { renderGMP(out3, r); },
  });

  root.append(
    h("h3", {}, "The rules behind it, one tick at a time"),
    h("p", {}, h("span", { class: "sim-label" }, "SIMULATION"),
      " A trace shows what the scheduler did, not why. This model plays the runtime's rules (from ", h("code", {}, "src/runtime/proc.go"),
      ") on a small workload, one millisecond per step: runnext, the local queue and its overflow to the global one, the 61st schedule, stealing half a queue, the hand-off of a P stuck in a system call, and preemption after 10 ms. ",
      "Simplified: one M per P, a spinning M finds work at once, and Ps are tried in a fixed order rather than at random. Shrink the local queue to watch it spill."),
  );
  const card4 = h("div", { class: "card" });
  const out4 = h("div", { id: "result-gmp-sim" });
  root.append(card4, out4);
  let stopSim = () => {};
  await panel(card4, "gmp-sim", {
    runLabel: "Simulate",
    onStart() { stopSim(); out4.replaceChildren(); },
    onResult(r) { stopSim = renderSim(out4, r); },
  });
}

// renderSim draws the model's ticks with a stepper; it returns a function
// that stops playing.
function renderSim(out, r) {
  const last = r.ticks.length - 1;
  let at = 0, timer = null;
  const stop = () => { if (timer) clearInterval(timer); timer = null; play.textContent = "▶ Play"; };
  const slider = h("input", { type: "range", min: 0, max: last, value: 0, id: "gmp-tick", "aria-label": "Tick" });
  const label = h("span", { class: "status", id: "gmp-tick-label" });
  const play = h("button", { type: "button", id: "gmp-play" }, "▶ Play");
  const step = (d) => () => { stop(); at = Math.min(last, Math.max(0, at + d)); draw(); };
  slider.addEventListener("input", () => { stop(); at = Number(slider.value); draw(); });
  play.addEventListener("click", () => {
    if (timer) { stop(); return; }
    if (at >= last) at = 0;
    play.textContent = "⏸ Pause";
    timer = setInterval(() => { if (at >= last) { stop(); return; } at++; draw(); }, 600);
  });
  const board = h("div", { id: "gmp-board" });
  const events = h("div", { id: "gmp-events" });
  out.append(h("div", { class: "stepper" },
    h("button", { type: "button", onclick: () => { stop(); at = 0; draw(); } }, "Start"),
    h("button", { type: "button", id: "gmp-back", onclick: step(-1) }, "◀ Step"),
    play,
    h("button", { type: "button", id: "gmp-step", onclick: step(1) }, "Step ▶"),
    h("button", { type: "button", onclick: () => { stop(); at = last; draw(); } }, "End"),
    slider, label), board, events);
  const cells = (names) => names.length ? names.map((n) => h("span", {}, n)) : "empty";
  function draw() {
    const t = r.ticks[at];
    slider.value = at;
    label.textContent = `${t.tick} ms of ${r.ticks[last].tick}; ${t.done} goroutines ended`;
    board.replaceChildren(
      h("div", { class: "gcols" }, t.ps.map((p, i) => h("div", { class: "gcol", "data-p": i, "data-state": p.state === "running" ? "ready" : p.state === "syscall" ? "waiting" : "finished" },
        h("h4", {}, `P${i} `, h("span", { class: "status" }, p.state === "running" ? `runs ${p.g} (${p.runFor} ms)` : p.state === "syscall" ? `held by ${p.g}'s system call` : "idle")),
        h("div", { class: "queues" },
          h("div", { class: "q" }, h("strong", {}, "runnext: "), p.runnext ? h("span", {}, p.runnext) : "empty"),
          h("div", { class: "q" }, h("strong", {}, `local (${p.local.length}): `), cells(p.local)),
          h("div", { class: "q" }, h("strong", {}, "schedtick: "), String(p.schedtick)))))),
      h("div", { class: "queues" },
        h("div", { class: "q", id: "gmp-global" }, h("strong", {}, `Global queue (${t.global.length}): `), cells(t.global)),
        h("div", { class: "q" }, h("strong", {}, "In a system call, without a P: "), cells(t.syscalls))),
    );
    events.replaceChildren(t.events.length
      ? h("ul", { class: "events" }, t.events.map((e) => h("li", { "data-rule": e.rule }, h("strong", {}, e.text), h("br"), h("span", { class: "note" }, r.rules[e.rule] || ""))))
      : h("p", { class: "note" }, "Nothing changed hands this tick: each P ran its goroutine."));
  }
  draw();
  return stop;
}

function renderGMP(out, r) {
  const s = r.lanes.sched;
  const byTask = (name) => { const i = r.lanes.names.indexOf(name); return i < 0 ? 0 : (s.preemptedByTask[i] || 0); };
  out.append(
    h("p", { class: "users", id: "gmp-summary" },
      `GOMAXPROCS ${r.procs}: ${fmtNum(r.burst)} goroutines in a burst, ${r.syscalls} blocking system calls and a ${r.spinMs} ms spin took ${fmtNum(Math.round(r.wallMs))} ms.`),
    table(["What the trace shows", "Count", "Why"], [
      ["goroutines created", fmtNum(s.created), "the burst, the system calls, the spinner, the creator, and the runtime's own"],
      ["first ran on another P than their creator's", fmtNum(s.ranElsewhere), r.procs > 1 ? "an idle P found them queued on the creator's P and took them: work stealing (or the global queue; the trace does not say which)" : "with one P there is nowhere else to run"],
      ["changed P later", fmtNum(r.lanes.moved), "a goroutine that stopped (a preemption, a system call, a wait) may resume on any P"],
      ["system calls that lost their P", fmtNum(s.lostP), "sysmon saw the P stuck in a system call with work waiting and handed it to another thread (handoffp); the goroutine came back without one and queued"],
      ["preemptions for running too long", fmtNum(s.preempted), `sysmon preempts a goroutine that has run 10 ms (forcePreemptNS) with a signal; ${byTask("spin")} of them hit the spinner, which ran ${r.spunMs.toFixed(1)} ms from start to end`],
      ["longest global run queue", fmtNum(r.maxGlobal), "preempted goroutines and system calls that lost their P wait here; a P looks at it every 61st schedule, or when its own queue is empty"],
      ["longest local run queue", fmtNum(r.maxLocal), "the burst, queued on the creator's P (at most 256; beyond, half go to the global queue)"],
    ], "table-gmp"),
  );
  const lanesDiv = h("div", { id: "gmp-trace" });
  out.append(lanesDiv);
  gantt(lanesDiv, { title: `Who ran on which P (${r.lanes.names.join(", ")}; grey: the runtime's goroutines)` + (r.lanes.dropped ? `, ${fmtNum(r.lanes.dropped)} shortest slices left out` : ""),
    unit: "ms", x: { label: "time since the first region began (ms)" }, tasks: Array.from({ length: r.procs }, (_, i) => "P" + i),
    slices: r.lanes.slices.map((x) => ({ task: "P" + x.p, start: x.start / 1000, end: x.end / 1000, colour: x.task,
      tip: `${x.task >= 0 ? r.lanes.names[x.task] : "runtime goroutine"} (goroutine ${x.g}) on P${x.p}: ${(x.start / 1000).toFixed(2)} to ${(x.end / 1000).toFixed(2)} ms` })) });
  if (r.queues.length) {
    const q = h("div", { id: "gmp-queues" });
    out.append(q);
    const series = [{ name: "global run queue", points: r.queues.map((x) => [x.ms, x.global]) }];
    for (let i = 0; i < r.procs; i++) series.push({ name: `P${i}'s local queue`, points: r.queues.map((x) => [x.ms, x.local[i] || 0]) });
    lineChart(q, { title: "Run queues every 5 ms (GODEBUG=schedtrace)", series, x: { label: "time since the child started (ms)" }, y: { label: "Goroutines waiting", unit: "" } });
  }
  out.append(h("p", { class: "note" }, "What a trace cannot tell apart: a goroutine that starts on another P was either stolen from a local queue or taken from the global one; both look the same. ",
    "schedtrace samples every 5 ms, so a queue that filled and drained between two samples is not seen."),
    h("details", {}, h("summary", {}, "What GODEBUG=schedtrace printed"), h("pre", { class: "code" }, r.schedtrace)));
}

function render(out, r) {
  const cpu = r.points.filter((p) => p.kind === "cpu"), wait = r.points.filter((p) => p.kind === "wait");
  const top = (pts) => pts[pts.length - 1];
  const fit = r.fits.find((f) => f.kind === "cpu");
  out.append(
    h("p", { class: "users", id: "parallel-verdict" },
      `CPU-bound: ${r.tasks} tasks of ${r.workMs} ms took ${fmtNum(Math.round(cpu[0].wallMs))} ms on one P (${cpu[0].tasks.toFixed(1)}× one task: one after another)` +
      (cpu.length > 1 ? ` and ${fmtNum(Math.round(top(cpu).wallMs))} ms on ${top(cpu).procs} (a speed-up of ${top(cpu).speedup.toFixed(2)}×).` : ".") +
      ` Waiting: ${fmtNum(Math.round(wait[0].wallMs))} ms on one P (${wait[0].tasks.toFixed(2)}× one task: all at once, without a second core).`),
    table(["Work", "GOMAXPROCS", "Wall time", "Serial part", "Speed-up", "The tasks' speed-up", "Granularity ceiling", "Amdahl's law", "× one task", "Tasks that changed P"],
      r.points.map((p) => [kindName[p.kind], String(p.procs), `${p.wallMs.toFixed(1)} ms`, p.kind === "cpu" ? `${p.serialMs.toFixed(1)} ms` : "—",
        p.speedup.toFixed(2) + "×", p.parallelSpeedup.toFixed(2) + "×", p.kind === "cpu" ? p.ceiling.toFixed(2) + "×" : "—",
        p.kind === "cpu" ? p.amdahl.toFixed(2) + "×" : "—", p.tasks.toFixed(2), String(p.lanes.moved)]), "table-parallel"),
  );
  if (fit) {
    const beyond = top(cpu).procs > r.cores;
    out.append(h("p", { id: "parallel-amdahl" },
      `Serial part set: ${fit.set.toFixed(2)}. Fitted with the tasks' own speed-up: ${fit.serialOfWork === null ? "no fit, the tasks went no faster" : "s = " + fit.serialOfWork.toFixed(3)}. ` +
      `Fitted to the whole run's speed-ups: s = ${fit.serial.toFixed(3)} from ${fit.points} speed-up${fit.points === 1 ? "" : "s"}, interference and uneven shares included: ` +
      (fit.limit === null ? "no serial part measured, no limit." : `at most ${fit.limit.toFixed(1)}× on any number of cores. `) +
      (fit.points < 3 ? `With ${fit.points} point${fit.points === 1 ? "" : "s"} the fit is fixed by the data, not tested by it: it says where the law would go, not that it will. ` : "") +
      (beyond ? `The fit uses GOMAXPROCS up to ${r.cores}, the cores this machine has. Past them the law's line is what more cores would give; the measured line stays flat, because extra Ps only take turns on the same cores.` : "")));
  }
  const chart = h("div");
  out.append(chart);
  const ps = r.points.filter((p) => p.kind === "cpu").map((p) => p.procs);
  lineChart(chart, { title: "Speed-up over GOMAXPROCS 1",
    series: [
      { name: "ideal (p×)", points: ps.map((p) => [p, p]) },
      { name: "CPU-bound, measured", points: cpu.map((p) => [p.procs, p.speedup]) },
      { name: "Amdahl's law, fitted", points: cpu.map((p) => [p.procs, p.amdahl]) },
      { name: "waiting, measured", points: wait.map((p) => [p.procs, p.speedup]) },
    ],
    x: { label: "GOMAXPROCS", ticksAt: ps }, y: { label: "Speed-up", unit: "×" } });
  out.append(h("h3", {}, "Who ran where: the runtime's trace"),
    h("p", { class: "note" }, "Each bar is a stretch in which one goroutine ran on one P. With one P the tasks take turns on one lane; with two, they run side by side. ",
      "A waiting task holds a P only for a few microseconds before and after its wait, so its lanes are nearly empty. ",
      "A task that changed P was moved by the scheduler: the trace shows that it moved, not whether another P stole it or it came back through the global run queue."));
  for (const p of r.points) {
    const div = h("div", { id: `parallel-trace-${p.kind}-${p.procs}` });
    out.append(div);
    const lanes = Array.from({ length: p.procs }, (_, i) => "P" + i);
    gantt(div, { title: `${kindName[p.kind]}, GOMAXPROCS ${p.procs}` + (p.lanes.dropped ? ` (${fmtNum(p.lanes.dropped)} shortest slices left out)` : ""),
      unit: "ms", x: { label: "time since the first task began (ms)" }, tasks: lanes,
      slices: p.lanes.slices.map((s) => ({ task: "P" + s.p, start: s.start / 1000, end: s.end / 1000, colour: s.task,
        tip: `${s.task >= 0 ? p.lanes.names[s.task] : "runtime goroutine"} (goroutine ${s.g}) on P${s.p}: ${(s.start / 1000).toFixed(2)} to ${(s.end / 1000).toFixed(2)} ms` })) });
  }
}
