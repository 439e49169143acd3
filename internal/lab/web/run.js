// Starting runs, streaming their events and the parameter form that every
// experiment panel shares.

let infos = null;

// experiments returns the server's experiment list, fetched once.
export async function experiments() {
  if (!infos) {
    const r = await fetch("/api/experiments");
    if (!r.ok) throw new Error(`the lab answered ${r.status} for its experiment list`);
    infos = await r.json();
  }
  return infos;
}

export async function info(id) {
  const list = await experiments();
  const i = list.find((e) => e.id === id);
  if (!i) throw new Error(`the lab has no experiment ${id}`);
  return i;
}

// start creates a run and streams its events to onEvent. It resolves to a
// handle whose cancel() stops the run. A refused parameter rejects with
// the server's error object ({code, message, param, min, max}).
export async function start(id, params, onEvent0) {
  // When a run ends, the header's queue line is read again at once (a
  // moment later, once the server has let the slot go), not at the next
  // poll.
  const onEvent = (e) => {
    onEvent0(e);
    if (e.kind === "end") setTimeout(() => window.dispatchEvent(new Event("stampede:queue")), 150);
  };
  const r = await fetch(`/api/experiments/${id}/runs`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(params),
  });
  const body = await r.json().catch(() => ({ error: { message: `the lab answered ${r.status}` } }));
  if (!r.ok) throw body.error;
  const es = new EventSource(body.events);
  let open = true;
  es.onmessage = (m) => {
    const e = JSON.parse(m.data);
    if (e.kind === "end") { open = false; es.close(); }
    onEvent(e);
  };
  es.onerror = () => {
    if (!open) return;
    open = false;
    es.close();
    onEvent({ kind: "error", message: "the connection to the lab was lost" });
    onEvent({ kind: "end" });
  };
  return {
    id: body.id,
    cancel() {
      if (!open) return;
      open = false;
      es.close(); // closing the stream is enough: the server cancels the run
      onEvent({ kind: "error", message: "stopped" });
      onEvent({ kind: "end" });
    },
  };
}

export function machineLine(m) {
  if (!m) return "";
  const virt = m.virtualised ? "virtualised" + (m.hypervisor ? ` (${m.hypervisor})` : "") : "not virtualised";
  return `Measured on ${m.cpu}, ${m.cores} cores, ${m.kernel}, ${m.go}, GOMAXPROCS ${m.gomaxprocs}, ${virt}.`;
}

export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== false && v !== undefined && v !== null) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

// panel renders an experiment's parameter form with Run and Stop, a
// progress bar and a status line, and calls hooks.onStart(), hooks.onEvent(e)
// and hooks.onResult(data, event). It returns {form, run(), setParam()}.
export async function panel(container, id, hooks = {}) {
  const inf = await info(id);
  const form = h("form", { class: "params", "data-experiment": id });
  const inputs = {};
  for (const p of inf.params || []) {  // an experiment may take none
    let input;
    const attrs = { id: `p-${id}-${p.name}`, name: p.name };
    if (p.kind === "choice") {
      input = h("select", attrs, p.choices.map((c) => h("option", { value: c, selected: c === p.default }, c)));
    } else if (p.kind === "bool") {
      input = h("input", { ...attrs, type: "checkbox", checked: p.default });
    } else if (p.kind === "text") {
      input = p.maxLen > 100 ? h("textarea", { ...attrs, maxlength: p.maxLen, spellcheck: "false" }, p.default)
        : h("input", { ...attrs, type: "text", maxlength: p.maxLen, value: p.default });
    } else {
      input = h("input", { ...attrs, type: "number", min: p.min, max: p.max, step: p.kind === "int" ? 1 : "any", value: p.default, required: true });
    }
    inputs[p.name] = input;
    const range = p.kind === "int" || p.kind === "float" ? ` (${p.min.toLocaleString("en")}–${p.max.toLocaleString("en")})` : "";
    form.append(h("label", { class: p.kind === "text" && p.maxLen > 100 ? "wide" : "", title: p.help || "" },
      `${p.label}${p.unit ? ", " + p.unit : ""}${range}`, input));
  }
  const runBtn = h("button", { type: "submit", class: "run", "data-run": id }, hooks.runLabel || "Run");
  const stopBtn = h("button", { type: "button", class: "stop", hidden: true }, "Stop");
  const bar = h("progress", { max: 1, value: 0, hidden: true });
  const status = h("span", { class: "status", id: `status-${id}`, role: "status" });
  const machine = h("p", { class: "machine", id: `machine-${id}` });
  form.append(h("div", { class: "actions" }, runBtn, stopBtn, bar, status));
  container.append(form, machine);
  let handle = null;

  const values = () => {
    const out = {};
    for (const [name, input] of Object.entries(inputs)) {
      const p = inf.params.find((q) => q.name === name);
      if (p.kind === "bool") out[name] = input.checked;
      else if (p.kind === "int" || p.kind === "float") out[name] = Number(input.value);
      else out[name] = input.value;
    }
    return { ...out, ...(hooks.extra ? hooks.extra() : {}) };
  };
  const finish = () => { handle = null; runBtn.disabled = false; stopBtn.hidden = true; bar.hidden = true; };

  async function run() {
    if (handle) return;
    status.className = "status";
    status.textContent = "starting…";
    form.dataset.state = "running";
    runBtn.disabled = true;
    if (hooks.onStart) hooks.onStart();
    try {
      handle = await start(id, values(), (e) => {
        if (hooks.onEvent) hooks.onEvent(e);
        switch (e.kind) {
          case "queued":
            status.textContent = e.position ? `queued: ${e.message}` : "starting…";
            break;
          case "start":
            status.textContent = "running…";
            stopBtn.hidden = false;
            break;
          case "progress":
            bar.hidden = !e.total;
            if (e.total) { bar.max = e.total; bar.value = e.done || 0; }
            status.textContent = e.message + "…";
            break;
          case "result":
            machine.textContent = machineLine(e.machine);
            status.textContent = "done";
            form.dataset.state = "done";
            if (hooks.onResult) hooks.onResult(e.data, e);
            break;
          case "error":
            status.className = "status error";
            status.textContent = e.message === "stopped" || e.message === "cancelled" ? "stopped" : "failed: " + e.message;
            form.dataset.state = "failed";
            break;
          case "end":
            finish();
            break;
        }
      });
    } catch (err) {
      status.className = "status error";
      status.textContent = err.message || String(err);
      form.dataset.state = "refused";
      finish();
    }
  }
  form.addEventListener("submit", (ev) => { ev.preventDefault(); run(); });
  stopBtn.addEventListener("click", () => handle && handle.cancel());
  return {
    form, run, status,
    setParam(name, v) { if (inputs[name]) inputs[name].value = v; },
  };
}

// onFrame returns a function that runs fn at most once per animation
// frame, however often it is called: live charts redraw once per frame,
// not once per event.
export function onFrame(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; fn(); });
  };
}

// table builds a table; cells that read as numbers are right-aligned.
export function table(head, rows, id) {
  const numeric = (v) => typeof v === "string" && /^[\d.,]+( |$)/.test(v);
  return h("table", { id },
    h("thead", {}, h("tr", {}, head.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, row.map((v) => h("td", { class: numeric(v) ? "num" : "" }, v))))));
}
