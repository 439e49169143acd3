// Chapter 5: waiting without blocking. Tasks that wait on real I/O, run
// one after another, all at once and a few at a time; then the CPU-bound
// trap on one P.
import { panel, h, table } from "./run.js";
import { gantt, lineChart, fmtNum, fmtBytes } from "./chart.js";

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
      const pl = r.pipeline;
      out.append(h("h3", {}, "The guide's producer/consumer, made to work"),
        h("p", {}, "The guide's version closes its channel after a fixed three-second sleep: it makes the program slow when the work is quick, and would panic (a send on a closed channel) if a producer were slower than the sleep. This one closes the channel when the last producer returns, so the consumers' ",
          h("code", {}, "range"), " loops end when the work does. Run here:"),
        h("p", { id: "async-pipeline", class: pl.sum === pl.wantSum ? "right" : "wrong" },
          `${pl.producers} producers of ${pl.each} values each, ${pl.consumers} consumers: ${pl.received} received, summing to ${pl.sum} (${pl.sum === pl.wantSum ? "every value once" : "expected " + pl.wantSum}), in ${fmtNum(Math.round(pl.elapsedMs))} ms.`),
        h("details", {}, h("summary", {}, "The code"), h("pre", { class: "code" }, pl.source)));
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

  root.append(
    h("h2", {}, "The event loop, for real"),
    h("p", {}, h("span", { class: "real-label" }, "REAL MEASUREMENT"),
      " Node.js, asyncio and nginx wait on many connections with one thread: ask the kernel which sockets are ready (", h("code", {}, "epoll_wait"),
      "), run the callback of each, repeat. Here is such a loop, written with ", h("code", {}, "golang.org/x/sys/unix"),
      " and run on one locked thread in a child of this lab, serving HTTP/1.1 keep-alive connections; every iteration is recorded. Then the same load against Go's ", h("code", {}, "net/http"),
      ", a goroutine per connection, whose netpoller runs the same epoll underneath. Halfway through each load, one request asks its callback to sleep: on the loop, everyone waits."),
    h("pre", { class: "code", id: "eventloop-template" }, loopTemplate),
    h("p", { class: "note" }, "The guide's Python sample cannot run as printed: it calls ", h("code", {}, "popleft()"), " on a list (that is a ", h("code", {}, "collections.deque"),
      " method) and uses ", h("code", {}, "time"), " without importing it. It also drains the ready queue until empty, so a callback that schedules another starves the I/O wait; the loop above runs only what was ready when it looked."),
  );
  const card2 = h("div", { class: "card" });
  const out2 = h("div", { id: "result-eventloop" });
  root.append(card2, out2);
  await panel(card2, "eventloop", {
    onStart() { out2.replaceChildren(); },
    onResult(r) { renderLoop(out2, r); },
  });
}

const loopTemplate = `for !stopped {
	// 1. Wait for I/O, no longer than until the next timer is due.
	n, _ := unix.EpollWait(epfd, events, msUntilNextTimer())
	// 2. Run the timers that are due.
	for len(timers) > 0 && !timers[0].at.After(time.Now()) {
		fire(heap.Pop(&timers))
	}
	// 3. Run the callback of every descriptor that was ready.
	for _, ev := range events[:n] {
		if ev.Fd == listener {
			acceptAll()                 // new connections join the epoll set
		} else {
			readAndAnswer(conns[ev.Fd]) // parse requests, write responses
		}
	}
}`;

const serverName = { reactor: "epoll loop, one thread", nethttp: "net/http, a goroutine per connection" };

function renderLoop(out, r) {
  out.append(table(["Server", "Requests/s", "p50", "p99", "Slowest", "Resident memory per idle connection", "Kernel slab per connection (both ends)", "Threads"],
    r.runs.map((x) => [serverName[x.server], fmtNum(Math.round(x.perSecond)), `${x.p50Ms.toFixed(2)} ms`, `${x.p99Ms.toFixed(2)} ms`, `${x.maxMs.toFixed(1)} ms`,
      fmtBytes(Math.max(0, x.rssPerConn)), fmtBytes(Math.max(0, x.kernelPerConn)), String(x.threads)]), "table-eventloop"),
    h("p", { class: "note" }, `The load comes from goroutines in the lab process, which shares this machine's cores with the server: compare the two servers with each other, not with a load generator on a core of its own. `,
      `Memory is read from the server's VmRSS and the kernel's Slab before and after ${fmtNum(r.runs[0].idleConns)} idle connections; resident memory grows by whole pages, so a figure of a few bytes means "less than the noise".`));
  const blocked = r.runs.filter((x) => x.blockAtMs >= 0);
  if (blocked.length) {
    const div = h("div", { id: "eventloop-latency" });
    out.append(div);
    lineChart(div, { title: "The slowest request in each 50 ms, one blocking callback halfway",
      series: r.runs.map((x) => ({ name: serverName[x.server], points: x.windows.filter((w) => w.served).map((w) => [w.atMs, w.maxMs]) })),
      x: { label: "time since the load began (ms)" }, y: { label: "Slowest request", unit: "ms", log: true } });
    const loop = r.runs.find((x) => x.server === "reactor"), goro = r.runs.find((x) => x.server === "nethttp");
    out.append(h("p", { id: "eventloop-block" }, `On the loop, the slowest request took ${loop.maxMs.toFixed(0)} ms: the sleeping callback held the only thread, so every connection waited. `,
      `With a goroutine per connection the slowest took ${goro.maxMs.toFixed(0)} ms: only the request that slept waited for itself.`));
  }
  const t = r.totals;
  out.append(h("h3", {}, "Inside the loop"),
    h("p", { id: "eventloop-totals" }, `${fmtNum(t.iterations)} iterations: ${fmtNum(Math.round(t.waitMs))} ms waiting in epoll_wait, ${fmtNum(Math.round(t.workMs))} ms running ${fmtNum(t.callbacks)} callbacks (${(t.callbacks / Math.max(1, t.iterations)).toFixed(1)} an iteration), ${fmtNum(t.timers)} timers, ${fmtNum(t.accepted)} accepts.`));
  if (!r.iterations.length) return;
  let at = 0;
  const label = h("span", { class: "status", id: "eventloop-iter-label" });
  const view = h("div", { id: "eventloop-iteration" });
  const step = (d) => () => { at = Math.min(r.iterations.length - 1, Math.max(0, at + d)); draw(); };
  out.append(h("div", { class: "stepper" },
    h("button", { type: "button", id: "eventloop-back", onclick: step(-1) }, "◀ Iteration"),
    h("button", { type: "button", id: "eventloop-next", onclick: step(1) }, "Iteration ▶"), label), view);
  function draw() {
    const it = r.iterations[at];
    label.textContent = `iteration ${it.n + 1} of the first ${r.iterations.length}, at ${(it.atUs / 1000).toFixed(2)} ms`;
    view.replaceChildren(
      h("div", { class: "queues" },
        h("div", { class: "q" }, h("strong", {}, "epoll_wait: "), `${it.waitUs.toFixed(0)} µs, timeout ${it.timeoutMs < 0 ? "none" : it.timeoutMs + " ms"}, ${it.ready} ready`),
        h("div", { class: "q" }, h("strong", {}, "ran: "), `${it.accepted} accepts, ${it.timers} timers, ${it.callbacks} requests in ${it.workUs.toFixed(0)} µs`)),
      it.queue && it.queue.length ? h("ol", { class: "history" }, it.queue.map((q) => h("li", {}, q))) : h("p", { class: "note" }, "Nothing ran: the wait timed out."));
  }
  draw();
}
