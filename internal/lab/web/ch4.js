// Chapter 4: processes, walls and doors. One global, K processes, K values;
// a crash that stays in its process; a panic that takes its process down.
import { panel, h, table } from "./run.js";
import { barChart, fmtNum } from "./chart.js";

export async function isolation(root) {
  root.append(
    h("h1", {}, "4 · Processes: walls and doors"),
    h("p", {}, h("span", { class: "real-label" }, "REAL MEASUREMENT"),
      " The lab starts K children of its own binary. Each stores its own number in the same global variable, waits until all have, and reads it back. ",
      "Every child finds the variable at the same virtual address, and every child reads back its own number: the address is the same, the page behind it is not, because each process has its own page tables. ",
      "(The address is the same because Go links a binary at a fixed address by default; built with -buildmode=pie, under the kernel's address-space randomisation, each child would find it elsewhere, and the lesson would hold all the same.)"),
    h("p", {}, "One more child reads through a nil pointer. The kernel delivers SIGSEGV; Go's handler turns it into a panic, and the child exits with status 2; the others finish untouched. ",
      "Then the contrast: one process running four counting goroutines, one of which panics without a recover. The panic ends the process, and the three healthy goroutines with it."),
    h("p", {}, "The door in the wall: every child maps one shared page (", h("code", {}, "MAP_SHARED"), ", from a memfd the lab passes down) and adds 1 to a counter in it. That counter is the same for all of them."),
  );
  const card = h("div", { class: "card" });
  const out = h("div", { id: "result-isolation" });
  root.append(card, out);
  await panel(card, "isolation", {
    onStart() { out.replaceChildren(); },
    onResult(r) {
      const first = r.children[0];
      out.append(
        table(["PID", "Address of the global", "Wrote", "Read back", "Shared counter", "Private", "Shared", "PSS", "Exit"], r.children.map((c) => [
          String(c.pid), h("code", {}, c.addr), fmtNum(c.wrote), h("span", { class: c.read === c.wrote ? "right" : "wrong" }, fmtNum(c.read)),
          fmtNum(c.shared), `${fmtNum(c.privateKiB)} KiB`, `${fmtNum(c.sharedKiB)} KiB`, `${fmtNum(c.pssKiB)} KiB`, c.exit]), "table-isolation"),
        h("p", { id: "isolation-verdict", class: r.sameAddress && r.ownValues ? "right" : "wrong" },
          r.sameAddress && r.ownValues ? `${r.children.length} processes, one address (${first.addr}), ${r.children.length} different values: each process has its own memory.`
            : "The children did not all see their own value at one address; see the table."),
        h("p", { id: "isolation-shared" }, `The shared counter reads ${fmtNum(first.shared)} in every child: the one page they all mapped with MAP_SHARED.`),
        h("p", { id: "isolation-crash", class: "wrong" }, `The crashing child: ${r.crashed.exit}; ${r.crashed.signal || "no fault line"}. The others above exited 0.`),
        r.crashedAt ? h("p", { id: "isolation-counting", class: "right" },
          `They were counting milliseconds when it died, and went on: ${r.children.map((c) => `${fmtNum(c.counted)} ticks, ${((r.crashedAt - c.countFrom) / 1e6).toFixed(0)} ms before the crash to ${((c.countTo - r.crashedAt) / 1e6).toFixed(0)} ms after`).join("; ")}.`) : null,
        h("p", { id: "isolation-panic", class: "wrong" }, `One goroutine's panic: the process ended (${r.panic.exit}) with its four goroutines at ${(r.panic.counts || []).join(", ")} counts. ${r.panic.reason}`),
        h("h2", {}, "Where the memory is"),
        h("p", {}, "From the first child's /proc/self/maps: the page of the global is private (", h("code", {}, "rw-p"), "), the program's code is mapped from the binary and read-only (",
          h("code", {}, "r-xp"), "). The kernel shares the code's pages between every process that runs the binary, which is why each child's shared memory is large and its private memory small. ",
          "The guide's claim that each process has its own code segment is true of the mapping, not of the memory."),
        h("pre", { class: "code", id: "isolation-maps" }, `${first.mapLine}   ← the global\n${first.text}   ← the code`),
      );
    },
  });

  root.append(
    h("h2", {}, "The doors: how processes talk"),
    h("p", {}, h("span", { class: "real-label" }, "REAL MEASUREMENT"),
      " Two children of this lab, each pinned to a CPU, pass messages through each mechanism: round trips of 64 bytes (the latency of a request and its answer) and then a stream of 64 KiB chunks, each acknowledged (how much data per second). ",
      "Both ends do blocking system calls on one pinned thread, so Go's runtime adds nothing but the signal path. First both on one core, where every hand-off is a context switch; then on two, where it is a wake-up across CPUs. ",
      "The guide's table rates pipes and message queues \"medium\", shared memory \"fastest\", sockets \"slower\"; here is what this machine says."),
  );
  const card2 = h("div", { class: "card" });
  const out2 = h("div", { id: "result-ipc" });
  root.append(card2, out2);
  await panel(card2, "ipc", {
    onStart() { out2.replaceChildren(); },
    onResult(r) {
      const places = Object.keys(r.placements);
      const mechs = [...new Set(r.rows.map((x) => x.name))];
      const shortNames = { pipe: "pipe", unix: "Unix stream", unixgram: "Unix dgram", tcp: "TCP", mq: "mqueue", "shm-spin": "shm spin", "shm-futex": "shm futex", signal: "signal" };
      const short = (n) => shortNames[(r.rows.find((x) => x.name === n) || {}).mechanism] || n;
      const lat = h("div"), tp = h("div");
      out2.append(
        table(["Mechanism", "Placement", "Round trips", "Median", "p99", "Stream", "The guide says"],
          r.rows.map((x) => [x.name, x.placement, fmtNum(x.trips), `${x.medianUs.toFixed(2)} µs`, `${x.p99Us.toFixed(2)} µs`,
            x.mibps ? `${fmtNum(Math.round(x.mibps))} MiB/s` : "– (no data)", x.claim]), "table-ipc"),
        h("p", { class: "note" }, places.map((p) => `${p}: ${r.placements[p]}`).join("; ") + ". A test stops after the time limit, so a slow mechanism shows fewer round trips."),
        lat, tp,
        h("ul", { id: "ipc-verdicts" }, r.verdicts.map((v) => h("li", {}, v))));
      barChart(lat, { title: "Median round trip of 64 bytes (log scale)", categories: mechs.map(short),
        series: places.map((p) => ({ name: p, values: mechs.map((m) => (r.rows.find((x) => x.name === m && x.placement === p) || {}).medianUs * 1000) })),
        y: { label: "Round trip", unit: "ns", log: true } });
      const streamed = mechs.filter((m) => r.rows.some((x) => x.name === m && x.mibps > 0));
      barChart(tp, { title: "Stream of 64 KiB chunks", categories: streamed.map(short),
        series: places.map((p) => ({ name: p, values: streamed.map((m) => (r.rows.find((x) => x.name === m && x.placement === p) || {}).mibps) })),
        y: { label: "MiB/s", unit: "MiB/s" } });
    },
  });
}
