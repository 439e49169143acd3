// The lab's own small SVG chart module: line, bar, Gantt and histogram,
// with labelled axes and units, legends and tooltips. Colours come from
// CSS variables so the charts follow the light or dark theme.

const NS = "http://www.w3.org/2000/svg";
export const palette = ["--c1", "--c2", "--c3", "--c4", "--c5", "--c6", "--c7", "--c8", "--c9", "--c10"];
// Past the palette's ten, hues step by the golden angle, so that no two
// of up to hundreds of series share a colour.
export const colour = (i) => i < palette.length ? `var(${palette[i]})` : `hsl(${Math.round((i * 137.508) % 360)} 60% 48%)`;

function el(name, attrs = {}, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// fmtNs formats nanoseconds; fmtBytes binary bytes; fmtNum plain numbers.
// sig keeps three significant digits and drops trailing zeros.
const sig = (v) => String(+v.toPrecision(3));
export function fmtNs(ns) {
  if (!isFinite(ns)) return "–";
  if (ns >= 1e9) return sig(ns / 1e9) + " s";
  if (ns >= 1e6) return sig(ns / 1e6) + " ms";
  if (ns >= 1e3) return sig(ns / 1e3) + " µs";
  return sig(ns) + " ns";
}
export function fmtBytes(b) {
  if (!isFinite(b)) return "–";
  if (b >= 2 ** 30) return sig(b / 2 ** 30) + " GiB";
  if (b >= 2 ** 20) return sig(b / 2 ** 20) + " MiB";
  if (b >= 2 ** 10) return sig(b / 2 ** 10) + " KiB";
  return sig(b) + " B";
}
export function fmtNum(v) {
  if (!isFinite(v)) return "–";
  if (Math.abs(v) >= 1e4 || Number.isInteger(v)) return Math.round(v).toLocaleString("en");
  return sig(v);
}
const fmtBy = (unit) => unit === "ns" ? fmtNs : unit === "bytes" ? fmtBytes : (v) => fmtNum(v) + (unit ? " " + unit : "");

// A scale maps data to pixels, linear or logarithmic. A log scale spans
// whole steps: decades, or for bytes powers of 32 (1 KiB, 32 KiB, 1 MiB…),
// unless tight, when it spans exactly min to max.
function scale(min, max, lo, hi, log, unit, tight) {
  if (log) {
    const base = unit === "bytes" ? 32 : 10;
    const lg = (v) => Math.log(v) / Math.log(base);
    min = Math.max(min, 1e-9);
    max = Math.max(max, min);
    let a = Math.floor(lg(min) + 1e-9), b = Math.max(a + 1, Math.ceil(lg(max) - 1e-9));
    if (tight && max > min) { a = lg(min); b = lg(max); }
    const f = (v) => lo + (lg(Math.max(v, base ** a)) - a) / (b - a) * (hi - lo);
    f.ticks = [];
    for (let p = Math.ceil(a - 1e-9); p <= b + 1e-9; p++) f.ticks.push(base ** p);
    f.floor = base ** a;
    return f;
  }
  if (max === min) max = min + 1;
  const step = niceStep((max - min) / 5);
  const a = Math.floor(min / step) * step, b = Math.ceil(max / step) * step;
  const f = (v) => lo + (v - a) / (b - a) * (hi - lo);
  f.ticks = [];
  for (let v = a; v <= b + step / 2; v += step) f.ticks.push(+v.toPrecision(12));
  f.floor = a;
  return f;
}
function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

// tooltip shows text beside the pointer while it is over target.
function tooltip(target, text) {
  target.addEventListener("mouseenter", (ev) => {
    let tip = document.getElementById("chart-tip");
    if (!tip) {
      tip = document.createElement("div");
      tip.id = "chart-tip";
      tip.setAttribute("role", "tooltip");
      document.body.appendChild(tip);
    }
    tip.textContent = text;
    tip.hidden = false;
    move(ev);
  });
  const move = (ev) => {
    const tip = document.getElementById("chart-tip");
    if (tip) { tip.style.left = ev.pageX + 12 + "px"; tip.style.top = ev.pageY + 12 + "px"; }
  };
  target.addEventListener("mousemove", move);
  target.addEventListener("mouseleave", () => { const t = document.getElementById("chart-tip"); if (t) t.hidden = true; });
}

function frame(container, title, w = 640, h = 300) {
  container.replaceChildren();
  const fig = document.createElement("figure");
  fig.className = "chart";
  if (title) {
    const cap = document.createElement("figcaption");
    cap.textContent = title;
    fig.appendChild(cap);
  }
  const svg = el("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": title || "chart" });
  fig.appendChild(svg);
  container.appendChild(fig);
  return { fig, svg, container, w, h, m: { l: 84, r: 16, t: 12, b: 46 } };
}

function axes(f, xs, ys, x, y) {
  const { svg, w, h, m } = f;
  const g = el("g", { class: "axes" }, svg);
  for (const t of ys.ticks) {
    const py = ys(t);
    el("line", { x1: m.l, x2: w - m.r, y1: py, y2: py, class: "grid" }, g);
    el("text", { x: m.l - 6, y: py + 4, "text-anchor": "end" }, g).textContent = fmtBy(y.unit)(t);
  }
  if (xs.ticks) for (const t of xs.ticks) {
    const px = xs(t);
    el("line", { x1: px, x2: px, y1: h - m.b, y2: h - m.b + 4, class: "axis" }, g);
    el("text", { x: px, y: h - m.b + 16, "text-anchor": "middle" }, g).textContent = x.fmt ? x.fmt(t) : fmtNum(t);
  }
  el("line", { x1: m.l, x2: w - m.r, y1: h - m.b, y2: h - m.b, class: "axis" }, g);
  el("line", { x1: m.l, x2: m.l, y1: m.t, y2: h - m.b, class: "axis" }, g);
  el("text", { x: (m.l + w - m.r) / 2, y: h - 8, "text-anchor": "middle", class: "label" }, g).textContent = x.label;
  el("text", { x: 14, y: (m.t + h - m.b) / 2, "text-anchor": "middle", class: "label", transform: `rotate(-90 14 ${(m.t + h - m.b) / 2})` }, g).textContent = y.label;
}

// legend lists the series under a chart. Clicking a name hides or shows
// its series (the choice outlives the live redraws of the same chart);
// pointing at it, or focusing it, fades the others.
function legend(f, names) {
  const hidden = (f.container._hidden ||= new Set());
  const ul = document.createElement("ul");
  ul.className = "legend";
  const apply = () => {
    for (const e of f.svg.querySelectorAll("[data-series]")) e.classList.toggle("off", hidden.has(e.dataset.series));
    for (const li of ul.children) li.classList.toggle("off", hidden.has(li.dataset.name));
  };
  const focus = (n) => {
    f.svg.classList.toggle("focus", n !== null);
    for (const e of f.svg.querySelectorAll("[data-series]")) e.classList.toggle("hl", e.dataset.series === n);
  };
  names.forEach((n, i) => {
    const li = document.createElement("li");
    li.dataset.name = n;
    li.tabIndex = 0;
    li.setAttribute("role", "button");
    li.title = "click to hide or show; point to pick it out";
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = colour(i);
    li.append(sw, n);
    const toggle = () => { if (hidden.has(n)) hidden.delete(n); else hidden.add(n); apply(); };
    li.addEventListener("click", toggle);
    li.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); } });
    li.addEventListener("mouseenter", () => focus(n));
    li.addEventListener("mouseleave", () => focus(null));
    li.addEventListener("focus", () => focus(n));
    li.addEventListener("blur", () => focus(null));
    ul.appendChild(li);
  });
  f.fig.appendChild(ul);
  apply();
}

// lineChart draws series [{name, points: [[x, y], …]}].
// x and y: {label, unit ("ns", "bytes" or text), log, fmt}.
export function lineChart(container, { title, series, x, y }) {
  const f = frame(container, title);
  const pts = series.flatMap((s) => s.points);
  if (!pts.length) return f;
  const xv = pts.map((p) => p[0]), yv = pts.map((p) => p[1]).filter((v) => !y.log || v > 0);
  const xs = scale(Math.min(...xv), Math.max(...xv), f.m.l, f.w - f.m.r, x.log, x.unit, true);
  if (x.log) xs.ticks = [...new Set(xv)].sort((a, b) => a - b); // label the measured points
  if (x.ticksAt) xs.ticks = x.ticksAt;
  const ys = scale(y.log ? Math.min(...yv) : Math.min(0, ...yv), Math.max(...yv), f.h - f.m.b, f.m.t, y.log, y.unit);
  axes(f, xs, ys, x, y);
  const fx = x.fmt || fmtNum, fy = fmtBy(y.unit);
  series.forEach((s, i) => {
    const g = el("g", { class: "series", "data-series": s.name }, f.svg);
    const d = s.points.map((p, k) => `${k ? "L" : "M"}${xs(p[0]).toFixed(1)},${ys(p[1]).toFixed(1)}`).join("");
    el("path", { d, fill: "none", stroke: colour(i), "stroke-width": 2 }, g);
    for (const p of s.points) {
      const c = el("circle", { cx: xs(p[0]), cy: ys(p[1]), r: 4, fill: colour(i), class: "point" }, g);
      tooltip(c, `${s.name}: ${fy(p[1])} at ${x.label.toLowerCase()} ${fx(p[0])}`);
    }
  });
  legend(f, series.map((s) => s.name));
  return f;
}

// barChart draws grouped bars: categories along x, one bar per series.
export function barChart(container, { title, categories, series, y }) {
  const f = frame(container, title);
  const vals = series.flatMap((s) => s.values).filter((v) => isFinite(v) && (!y.log || v > 0));
  if (!vals.length) return f;
  const ys = scale(y.log ? Math.min(...vals) : 0, Math.max(...vals), f.h - f.m.b, f.m.t, y.log, y.unit);
  const band = (f.w - f.m.l - f.m.r) / categories.length;
  const xs = () => 0;
  axes(f, xs, ys, { label: "" }, y);
  const bw = Math.min(48, (band * 0.8) / series.length);
  const fy = fmtBy(y.unit);
  // Labels wider than their band would run into each other: every other
  // one goes a line lower (about 6.5 px a character at the chart's size).
  const stagger = categories.some((c) => String(c).length * 6.5 > band);
  categories.forEach((c, ci) => {
    const x0 = f.m.l + ci * band + (band - bw * series.length) / 2;
    el("text", { x: f.m.l + ci * band + band / 2, y: f.h - f.m.b + 16 + (stagger && ci % 2 ? 14 : 0), "text-anchor": "middle", class: "category" }, f.svg).textContent = c;
    series.forEach((s, si) => {
      const v = s.values[ci];
      if (!isFinite(v)) return;
      const top = ys(Math.max(v, ys.floor));
      const base = f.h - f.m.b;
      const r = el("rect", { x: x0 + si * bw, y: Math.min(top, base), width: bw - 2, height: Math.abs(base - top), fill: colour(si), class: "bar", "data-series": s.name }, f.svg);
      tooltip(r, `${c}, ${s.name}: ${fy(v)}`);
    });
  });
  if (series.length > 1 || series[0].name) legend(f, series.map((s) => s.name));
  return f;
}

// histogram bins values and draws the counts.
export function histogram(container, { title, values, x, bins }) {
  const f = frame(container, title);
  if (!values.length) return f;
  const lo = Math.min(...values), hi = Math.max(...values);
  const n = bins || Math.min(30, Math.max(5, Math.ceil(Math.sqrt(values.length))));
  const width = (hi - lo) / n || 1;
  const counts = new Array(n).fill(0);
  for (const v of values) counts[Math.min(n - 1, Math.floor((v - lo) / width))]++;
  const xs = scale(lo, lo + width * n, f.m.l, f.w - f.m.r, false);
  const ys = scale(0, Math.max(...counts), f.h - f.m.b, f.m.t, false);
  axes(f, xs, ys, x, { label: "count", unit: "" });
  const fx = x.fmt || fmtNum;
  counts.forEach((c, i) => {
    const a = lo + i * width, b = a + width;
    const top = ys(c), base = f.h - f.m.b;
    const r = el("rect", { x: xs(a) + 1, y: top, width: Math.max(1, xs(b) - xs(a) - 2), height: base - top, fill: colour(0), class: "bar" }, f.svg);
    tooltip(r, `${fx(a)} to ${fx(b)}: ${c}`);
  });
  return f;
}

// gantt draws slices [{task, start, end, level}] on one row per task,
// with an optional cursor at tick `at`. Options: arrivals [{task, at}]
// drawn as a mark where each task arrives, io [{task, start, end}] drawn
// as a thin bar for each stretch a task waits on I/O, hideFuture to leave
// out what lies beyond the cursor (for a learner predicting it), and a
// line at every tick when there are few enough to read.
export function gantt(container, { title, tasks, slices, at, x, unit, arrivals, io, hideFuture }) {
  const rowH = 22;
  const f = frame(container, title, 640, 40 + tasks.length * rowH + 40);
  f.m.l = 50;
  const end = Math.max(1, ...slices.map((s) => s.end), ...(io || []).map((s) => s.end));
  const xs = scale(0, end, f.m.l, f.w - f.m.r, false);
  xs.ticks = xs.ticks.filter((t) => Number.isInteger(t) && t <= end);
  const g = el("g", { class: "axes" }, f.svg);
  tasks.forEach((t, i) => {
    el("text", { x: f.m.l - 8, y: f.m.t + i * rowH + 15, "text-anchor": "end" }, g).textContent = t;
  });
  const base = f.m.t + tasks.length * rowH + 4;
  if (end <= 80 && !unit) {
    for (let t = 0; t <= end; t++) el("line", { x1: xs(t), x2: xs(t), y1: f.m.t, y2: base, class: "grid tick" }, g);
  }
  for (const t of xs.ticks) {
    el("line", { x1: xs(t), x2: xs(t), y1: f.m.t, y2: base, class: "grid" }, g);
    el("text", { x: xs(t), y: base + 16, "text-anchor": "middle" }, g).textContent = fmtNum(t);
  }
  el("text", { x: (f.m.l + f.w - f.m.r) / 2, y: base + 34, "text-anchor": "middle", class: "label" }, g).textContent = (x && x.label) || "time (ticks)";
  const future = (start) => at !== undefined && at < start;
  for (const s of io || []) {
    if (hideFuture && future(s.start)) continue;
    const row = tasks.indexOf(s.task);
    const r = el("rect", { x: xs(s.start), y: f.m.t + row * rowH + rowH / 2 - 2, width: Math.max(1, xs(s.end) - xs(s.start) - 1), height: 4,
      class: "io" + (future(s.start) ? " future" : "") }, f.svg);
    tooltip(r, `${s.task}: waiting on I/O, ticks ${s.start} to ${s.end}`);
  }
  for (const s of slices) {
    if (!s.task || (hideFuture && future(s.start))) continue;
    const row = tasks.indexOf(s.task);
    const y = f.m.t + row * rowH + 2, w = Math.max(1, xs(s.end) - xs(s.start) - 1);
    const r = el("rect", { x: xs(s.start), y, width: w, height: rowH - 4,
      fill: s.colour !== undefined ? (s.colour < 0 ? "var(--muted)" : colour(s.colour)) : colour(row), class: "bar" + (future(s.start) ? " future" : "") }, f.svg);
    tooltip(r, s.tip || (unit ? `${s.task}: ${s.start} to ${s.end} ${unit}` : `${s.task}: ticks ${s.start} to ${s.end}`) + (s.level !== undefined && s.levels > 1 ? `, level ${s.level}` : ""));
    if (s.levels > 1 && w >= 16) {
      el("text", { x: xs(s.start) + w / 2, y: y + rowH / 2 + 2, "text-anchor": "middle", class: "bar-label" + (future(s.start) ? " future" : "") }, f.svg).textContent = "L" + s.level;
    }
  }
  for (const a of arrivals || []) {
    const row = tasks.indexOf(a.task);
    const px = xs(a.at), py = f.m.t + row * rowH + 1;
    const m = el("path", { d: `M${px - 4},${py - 3} L${px + 4},${py - 3} L${px},${py + 4} Z`, class: "arrival" }, f.svg);
    tooltip(m, `${a.task} arrives at tick ${a.at}`);
  }
  if (at !== undefined) el("line", { x1: xs(at), x2: xs(at), y1: f.m.t - 4, y2: base, class: "cursor" }, f.svg);
  f.svg.setAttribute("viewBox", `0 0 ${f.w} ${base + 44}`);
  return f;
}
