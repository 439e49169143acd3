// Chapter 7: races and deadlocks, one step at a time. The learner plays
// the scheduler over a program's states (all computed by the server's
// model), sees every interleaving counted, and then the same program run
// by real goroutines.
import { panel, h, table } from "./run.js";
import { barChart, fmtNum } from "./chart.js";

const language = `var x = 0          a shared integer       mutex m     a lock      chan c 0    a channel (0: unbuffered)
check x == 2       what must hold at the end
go G1              a goroutine; one step per line:
  load r x         r = x             store x r     x = r           mov r 5       r = 5
  add r 1          r = r + 1         fadd x 1      x = x + 1, atomically (atomic.AddInt64)
  cas x r t ok     if x == r { x = t; ok = 1 } else { ok = 0 }   (CompareAndSwap)
  lock m           waits while m is held                unlock m
  send c r         waits for room (or a receiver)       recv c r      waits for a value
  if r == 0 goto done                                   done:         a label (forward jumps only)`;

const kindText = { ok: "holds", failed: "broken", deadlock: "deadlock", fatal: "fatal error" };

export async function interleave(root) {
  root.append(
    h("h1", {}, "7 · Races and deadlocks, one step at a time"),
    h("p", {}, "A race needs two goroutines and bad luck: the wrong step at the wrong moment. Here you are the bad luck. ",
      "Each program below is a few goroutines written one step per line; every step is indivisible. ",
      "Pick which goroutine moves next and watch the shared state, then let the model try ", h("em", {}, "every"), " order and count how they end."),
    h("p", {}, h("span", { class: "sim-label" }, "MODEL"),
      " The game and the counts come from a model of the program, not from this machine: it explores every schedule exactly, assuming each step is atomic and memory is sequentially consistent. ",
      "It finds interleaving bugs (lost updates, oversells, deadlocks); it cannot show a CPU or compiler reordering memory, which is what Go's memory model and the race detector are for. ",
      "Two goroutines of n and m steps that never wait have C(n+m, n) schedules: 20 for two of three steps."),
    h("details", {}, h("summary", {}, "The language"), h("pre", { class: "code", id: "interleave-language" }, language)),
  );
  const card = h("div", { class: "card" });
  const out = h("div", { id: "result-interleave" });
  root.append(card, out);
  let stopReplay = () => {};
  const p = await panel(card, "interleave", {
    runLabel: "Check every interleaving",
    onStart() { stopReplay(); out.replaceChildren(); },
    onResult(r) { stopReplay = render(out, r, p); },
  });

  root.append(
    h("h2", {}, "The real thing: the same program on real goroutines"),
    h("p", {}, h("span", { class: "real-label" }, "REAL MEASUREMENT"),
      " Now the same steps run by real goroutines on this machine's cores, released together, over and over. Shared variables are atomic integers, so every step is as indivisible as in the model; the machine picks the schedule. ",
      "Compare how often each ending happens with the share of schedules that reach it: real schedulers do not pick schedules evenly, so a bug the model finds in a third of schedules may show up once in thousands of runs. Rare in a test is likely at 100,000 users: a failure in 1 run of 10,000 happens at least once in 100,000 runs with probability 1 − (1 − 1/10,000)^100,000, about 99.995 %."),
  );
  const card2 = h("div", { class: "card" });
  const out2 = h("div", { id: "result-interleave-real" });
  root.append(card2, out2);
  await panel(card2, "interleave-real", {
    onStart() { out2.replaceChildren(); },
    onResult(r) { renderReal(out2, r); },
  });
}

// render draws a model-check result: the game, the counts and the fixes.
// It returns a function that stops a replay in progress.
function render(out, r, p) {
  const head = h("div", {},
    h("h2", { id: "interleave-title" }, r.title || "Your program"),
    r.about ? h("p", {}, r.about) : null,
    r.checks.length ? h("p", { id: "interleave-checks" }, "Must hold at the end: ", r.checks.flatMap((c, i) => [i ? ", " : "", h("code", {}, c)])) : null);
  out.append(head);

  let stop = () => {};
  let game = null;
  if (r.graph) {
    game = playGame(r);
    stop = game.stop;
    out.append(game.el);
  } else {
    out.append(h("p", { class: "note" }, "This program has more states than the page should hold, so there is no game; the counts below are exact."));
  }

  const mc = r.model;
  const share = (n) => (100 * n / mc.schedules).toFixed(1) + " %";
  out.append(
    h("h3", {}, "Every schedule, counted"),
    h("p", { id: "interleave-summary", class: mc.failing ? "wrong" : "right" },
      mc.failing
        ? `${fmtNum(mc.failing)} of ${fmtNum(mc.schedules)} schedules fail (${share(mc.failing)}).`
        : `All ${fmtNum(mc.schedules)} schedules end well.`,
    ),
    h("p", { class: "note" }, `The model visited ${fmtNum(mc.states)} distinct states; a schedule is a path from the first to one with no move left.`));
  const rows = mc.outcomes.map((o, i) => {
    const show = h("button", { type: "button", "data-outcome": i, disabled: !game }, `Replay (${o.shortest.length} steps)`);
    show.addEventListener("click", () => game && game.replay(o.shortest));
    return h("tr", { class: o.kind === "ok" ? "" : "bad-row" },
      h("td", {}, o.label), h("td", { class: o.kind === "ok" ? "right" : "wrong" }, kindText[o.kind] + (o.broken ? ": " + o.broken.join(", ") : "")),
      h("td", { class: "num" }, fmtNum(o.schedules)), h("td", { class: "num" }, share(o.schedules)), h("td", {}, show));
  });
  out.append(h("table", { id: "table-interleave" },
    h("thead", {}, h("tr", {}, ["Ending", "Checks", "Schedules", "Share", "Its shortest schedule"].map((x) => h("th", {}, x)))),
    h("tbody", {}, rows)));
  const chart = h("div");
  out.append(chart);
  barChart(chart, { title: "How the schedules end", categories: mc.outcomes.map((o) => o.label.length > 28 ? o.label.slice(0, 26) + "…" : o.label),
    series: [{ name: "", values: mc.outcomes.map((o) => o.schedules) }], y: { label: "Schedules", unit: "" } });
  if (r.failure && r.failure.length) {
    out.append(h("h3", {}, "The shortest schedule that fails"),
      h("ol", { id: "interleave-failure", class: "code-list" }, r.failure.map((s) => h("li", {}, h("code", {}, s)))));
  }
  if (r.fixes && r.fixes.length) {
    out.append(h("h3", {}, "The fixes"),
      h("table", { id: "table-interleave-fixes" },
        h("thead", {}, h("tr", {}, ["Fix", "Schedules", "Failing", "Why it works", ""].map((x) => h("th", {}, x)))),
        h("tbody", {}, r.fixes.map((f) => {
          const play = h("button", { type: "button", "data-fix": f.id }, "Step through it");
          play.addEventListener("click", () => { p.setParam("program", f.id); p.setParam("source", ""); p.run(); });
          return h("tr", {}, h("td", {}, f.name), h("td", { class: "num" }, fmtNum(f.schedules)),
            h("td", { class: "num " + (f.failing ? "wrong" : "right") }, fmtNum(f.failing)), h("td", {}, f.why), h("td", {}, play));
        }))));
  }
  const edit = h("button", { type: "button", id: "interleave-edit" }, "Edit a copy of this program");
  edit.addEventListener("click", () => { p.setParam("source", r.source); p.form.scrollIntoView({ behavior: "smooth" }); });
  out.append(h("details", {}, h("summary", {}, "The program's source"), h("pre", { class: "code", id: "interleave-source" }, r.source), edit));
  return stop;
}

// playGame lets the learner be the scheduler over the model's states.
function playGame(r) {
  const nodes = r.graph;
  let cur = 0, timer = null;
  const history = []; // {from, text}
  const el = h("div", { class: "card game", id: "interleave-game" });
  const stop = () => { if (timer) clearInterval(timer); timer = null; };

  const stepText = (node, g) => {
    const pc = node.pc[g];
    return pc < r.goroutines[g].steps.length ? r.goroutines[g].steps[pc] : "";
  };
  const moveText = (node, m) => {
    let t = `${r.goroutines[m.g].name}: ${stepText(node, m.g)}`;
    if (m.partner >= 0) t += `  ↔ ${r.goroutines[m.partner].name}: ${stepText(node, m.partner)}`;
    return t;
  };
  const go = (i) => {
    const node = nodes[cur];
    history.push({ from: cur, text: moveText(node, node.moves[i]) });
    cur = node.next[i];
    draw();
  };
  const replay = (moves) => {
    stop();
    cur = 0; history.length = 0; draw();
    let k = 0;
    timer = setInterval(() => {
      if (k >= moves.length) { stop(); return; }
      const m = moves[k++];
      const i = nodes[cur].moves.findIndex((x) => x.g === m.g && x.partner === m.partner);
      if (i < 0) { stop(); return; }
      go(i);
    }, 450);
  };

  function draw() {
    const node = nodes[cur];
    const movable = new Set(node.moves.map((m) => m.g));
    const cols = r.goroutines.map((g, gi) => {
      const lines = [];
      g.steps.forEach((s, si) => {
        for (const l of (g.labels && g.labels[si]) || []) lines.push(h("li", { class: "label" }, l + ":"));
        lines.push(h("li", { class: si === node.pc[gi] ? "pc" : si < node.pc[gi] ? "past" : "" }, s));
      });
      for (const l of (g.labels && g.labels[g.steps.length]) || []) lines.push(h("li", { class: "label" }, l + ":"));
      const done = node.pc[gi] >= g.steps.length;
      lines.push(h("li", { class: done ? "pc end" : "end" }, "(end)"));
      const regs = g.registers.map((name, ri) => `${name} = ${node.regs[gi][ri]}`).join(", ");
      const state = done ? "finished" : movable.has(gi) ? "ready" : "waiting";
      return h("div", { class: "gcol", "data-goroutine": gi, "data-state": state },
        h("h4", {}, g.name, " ", h("span", { class: "status" }, state)),
        h("ol", { class: "steps" }, lines),
        h("div", { class: "regs" }, regs || "no registers"));
    });
    const shared = [
      ...r.shared.map((name, i) => h("span", { class: "cell", "data-var": name }, `${name} = ${node.vars[i]}`)),
      ...r.locks.map((name, i) => h("span", { class: "cell" }, `${name}: ${node.held[i] < 0 ? "free" : "held by " + r.goroutines[node.held[i]].name}`)),
      ...r.chans.map((name, i) => h("span", { class: "cell" }, `${name}: [${node.bufs[i].join(", ")}] of ${r.caps[i] || "unbuffered"}`)),
    ];
    const buttons = node.moves.map((m, i) => h("button", { type: "button", class: "move", "data-g": m.g, onclick: () => { stop(); go(i); } }, "▶ " + moveText(node, m)));
    let end = null;
    if (node.end) {
      const e = node.end;
      end = h("p", { id: "interleave-end", class: e.kind === "ok" ? "right" : "wrong" },
        e.kind === "ok" ? `Finished: ${e.label}. Every check holds.`
          : e.kind === "failed" ? `Finished: ${e.label}. Broken: ${e.broken.join(", ")}.`
            : e.kind === "deadlock" ? `Deadlock: ${e.label.replace(/^deadlock: /, "")} — each waits for what another holds, and none can move.`
              : `Stopped: ${e.label.replace(/^fatal: /, "")}.`);
    }
    el.replaceChildren(
      h("h3", {}, "You are the scheduler ", h("span", { class: "sim-label" }, "MODEL")),
      h("div", { class: "gcols" }, cols),
      h("div", { class: "shared", id: "interleave-shared" }, h("strong", {}, "Shared: "), shared.length ? shared : "nothing"),
      end || h("div", { class: "moves", id: "interleave-moves" }, h("span", { class: "status" }, "Next step: "), buttons),
      h("div", { class: "stepper" },
        h("button", { type: "button", id: "interleave-undo", disabled: !history.length, onclick: () => { stop(); cur = history.pop().from; draw(); } }, "◀ Undo"),
        h("button", { type: "button", id: "interleave-restart", onclick: () => { stop(); cur = 0; history.length = 0; draw(); } }, "Restart"),
        h("span", { class: "status", id: "interleave-step" }, `step ${history.length}`)),
      ...(history.length ? [h("ol", { class: "history", id: "interleave-history" }, history.map((x) => h("li", {}, x.text)))] : []),
    );
  }
  draw();
  return { el, stop, replay };
}

// renderReal draws the trials beside the model, and Go's runtime report.
function renderReal(out, r) {
  const pct = (v) => v.toFixed(v && v < 0.1 ? 3 : 1) + " %";
  out.append(
    h("p", { id: "interleave-real-summary", class: r.failed ? "wrong" : "right" },
      `${fmtNum(r.trials)} runs of ${r.program} on real goroutines (GOMAXPROCS ${r.gomaxprocs}${r.yield ? ", yielding after every step" : ""}) in ${fmtNum(Math.round(r.elapsedMs))} ms: ` +
      (r.failed ? `${fmtNum(r.failed)} went wrong (${pct(100 * r.failed / r.trials)}).` : "none went wrong.")),
    table(["Ending", "Runs", "Share of runs", "Model schedules", "Share of schedules"],
      r.rows.map((x) => [x.label, fmtNum(x.trials), pct(x.share), fmtNum(x.modelSchedules), pct(x.modelShare)]), "table-interleave-real"),
  );
  const failing = r.rows.filter((x) => x.kind !== "ok");
  if (failing.length && !r.failed) {
    out.append(h("p", { class: "note", id: "interleave-real-rare" },
      `The model says ${pct(failing.reduce((a, x) => a + x.modelShare, 0))} of schedules fail, and not one of these ${fmtNum(r.trials)} runs did: zero in a test does not mean safe. Try “Yield after every step”, or more runs.`));
  }
  if (r.unexplained) {
    out.append(h("p", { class: "wrong" }, `${fmtNum(r.unexplained)} runs ended in a way the model says no schedule reaches: please report this.`));
  }
  const rt = r.runtime;
  if (!rt) return;
  const said = rt.detector === "runtime"
    ? `Go's runtime stopped the process itself at run ${fmtNum(rt.trials)}: ${rt.fatal}`
    : rt.detector === "sigquit"
      ? `Run ${fmtNum(rt.trials)} hung. This binary links cgo, and with C code in the process Go's runtime never calls a standstill a deadlock (a C thread might yet wake a goroutine), so nothing was reported; after half a second without progress the lab sent the child SIGQUIT, and the runtime's dump shows ${rt.deadlock ? "every goroutine of the program waiting" : "what each goroutine was doing"}.`
      : `All ${fmtNum(rt.trials)} runs finished without a deadlock: the schedule that deadlocks never came up.`;
  out.append(
    h("h3", {}, "Go's own mutexes and channels, in a child process"),
    h("p", { id: "interleave-runtime" }, "The same program with ", h("code", {}, "sync.Mutex"), " and Go channels, run after run, in a process of its own. ", said),
    rt.goroutines && rt.goroutines.length ? h("ul", { id: "interleave-goroutines" }, rt.goroutines.map((g) => h("li", {}, h("code", {}, g)))) : null,
    rt.excerpt ? h("details", {}, h("summary", {}, "What the runtime printed"), h("pre", { class: "code" }, rt.excerpt)) : null,
  );
}
