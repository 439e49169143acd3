// Chapter 5: waiting without blocking. Tasks that wait on real I/O, run
// one after another, all at once and a few at a time; then the CPU-bound
// trap on one P.
import { panel, h, table } from "./run.js";
import { gantt, fmtNum } from "./chart.js";

const template = `// All at once, at most limit at a time: Go's answer to asyncio.gather
// with a semaphore. Each g.Go is a goroutine; a blocked read parks it
// and the runtime's netpoller wakes it when the answer comes.
g, ctx := errgroup.WithContext(ctx)
g.SetLimit(limit) // -1: no limit
for i, url := range urls {
	g.Go(func() error {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := client.Do(req)
		if err != nil {
			return err // cancels ctx: the other tasks stop too
		}
		defer resp.Body.Close()
		bodies[i], err = io.ReadAll(resp.Body)
		return err
	})
}
err := g.Wait()`;

const names = { sequential: "One after another", all: "All at once (errgroup)", limited: "A few at a time (errgroup.SetLimit)" };

export async function async(root) {
  root.append(
    h("h1", {}, "5 · Waiting without blocking"),
    h("p", {}, h("span", { class: "real-label" }, "REAL MEASUREMENT"),
      " N tasks each fetch from a small HTTP server inside the lab that answers after a delay you set (task i waits a little longer than task i−1). ",
      "Run one after another, the whole takes the sum of the delays; all at once, about the slowest; a few at a time, something between. ",
      "Every bar below is one task, from its start to its end, drawn from real timestamps."),
    h("p", {}, "Python writes this with ", h("code", {}, "async"), "/", h("code", {}, "await"), " and ", h("code", {}, "asyncio.gather"),
      "; Go needs no new colour of function: a goroutine that reads from a socket is parked by the runtime and woken by its netpoller (epoll) when the answer arrives, so ordinary blocking code waits without blocking a thread."),
    h("pre", { class: "code", id: "async-template" }, template),
  );
  const card = h("div", { class: "card" });
  const out = h("div", { id: "result-async" });
  root.append(card, out);
  await panel(card, "async", {
    onStart() { out.replaceChildren(); },
    onResult(r) {
      out.append(table(["Run", "Total", "÷ the sum of delays", "÷ the slowest delay"], r.runs.map((run) => [
        run.mode === "limited" ? `${names.limited}, ${run.limit}` : names[run.mode],
        `${fmtNum(Math.round(run.totalMs))} ms`, (run.totalMs / r.sumMs).toFixed(2) + "×", (run.totalMs / r.slowestMs).toFixed(2) + "×"]), "table-async"),
      h("p", { id: "async-summary" }, `The delays add up to ${fmtNum(r.sumMs)} ms and the slowest is ${fmtNum(r.slowestMs)} ms.`));
      for (const run of r.runs) {
        const div = h("div", { id: `async-gantt-${run.mode}` });
        out.append(div);
        gantt(div, { title: run.mode === "limited" ? `${names.limited}, ${run.limit}` : names[run.mode], unit: "ms", x: { label: "time since the run began (ms)" },
          tasks: run.tasks.map((t) => `T${t.index}`),
          slices: run.tasks.map((t) => ({ task: `T${t.index}`, start: Math.round(t.start), end: Math.max(Math.round(t.end), Math.round(t.start) + 1),
            tip: `T${t.index}: asked for a ${t.delayMs} ms answer; started at ${t.start.toFixed(1)} ms, sent at ${t.sent.toFixed(1)}, answered at ${t.answer.toFixed(1)}, done at ${t.end.toFixed(1)} ms` })) });
      }
      if (!r.trap || !r.trap.length) return;
      out.append(
        h("h2", {}, "The CPU-bound trap"),
        h("p", {}, "A child process with one P (", h("code", {}, "GOMAXPROCS=1"), ") puts five goroutines to sleep until set times, then runs a loop with no function call in it. ",
          "Go's runtime takes the P from a goroutine that has run for 10 ms by sending its thread a signal (asynchronous preemption, since Go 1.14), so the sleepers wake about on time. ",
          "Turned off (", h("code", {}, "GODEBUG=asyncpreemptoff=1"), "), the loop keeps the only P until it ends, as a callback keeps an event loop: asyncio and Node.js behave this way, and every other task waits."),
        table(["Sleeper", ...r.trap.map((t) => t.preemption ? "woke (preemption on)" : "woke (preemption off)"), "due"],
          r.trap[0].sleepers.map((s, i) => [`S${i + 1}`, ...r.trap.map((t) => `${t.sleepers[i].gotMs.toFixed(1)} ms`), `${s.wantMs.toFixed(1)} ms`]), "table-async-trap"),
        ...r.trap.map((t) => h("p", { class: t.preemption ? "right" : "wrong", "data-preemption": String(t.preemption) },
          `Preemption ${t.preemption ? "on" : "off"}: the loop ran ${fmtNum(Math.round(t.spinMs))} ms; the sleepers woke at worst ${t.worstLateMs.toFixed(1)} ms late.`)));
    },
  });
}
