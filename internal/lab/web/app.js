// The lab's page: a hash router over the chapters, the theme switch and
// the queue indicator. Each chapter renders itself on first visit and
// stays alive, so a run goes on while you read another chapter.
import { machineLine } from "./run.js";
import { costs } from "./ch1.js";
import { scheduling } from "./ch2.js";
import { sync } from "./ch3.js";
import { isolation } from "./ch4.js";
import { async } from "./ch5.js";
import { parallel } from "./ch6.js";
import { interleave } from "./ch7.js";
import { flashsale } from "./ch8.js";
import { reference } from "./reference.js";
import { glossary } from "./glossary.js";

const chapters = { costs, scheduling, sync, isolation, async, parallel, interleave, flashsale, reference, glossary };
const rendered = {};

async function route() {
  const name = location.hash.replace(/^#\/?/, "") || "home";
  const main = document.getElementById("main");
  for (const s of main.querySelectorAll(".chapter")) s.hidden = true;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.chapter === name);
  if (!chapters[name]) { document.getElementById("home").hidden = false; return; }
  if (!rendered[name]) {
    const section = document.createElement("section");
    section.className = "chapter";
    section.id = "chapter-" + name;
    main.appendChild(section);
    rendered[name] = section;
    try {
      await chapters[name](section);
    } catch (err) {
      section.textContent = "This chapter could not load: " + (err.message || err);
    }
  }
  rendered[name].hidden = false;
  window.scrollTo(0, 0);
}

function theme() {
  const root = document.documentElement;
  const saved = localStorage.getItem("stampede-theme");
  const dark = saved ? saved === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  root.classList.toggle("dark", dark);
  document.getElementById("theme").addEventListener("click", () => {
    const now = !root.classList.contains("dark");
    root.classList.toggle("dark", now);
    localStorage.setItem("stampede-theme", now ? "dark" : "light");
  });
}

async function pollQueue() {
  await refreshQueue();
  setTimeout(pollQueue, 1500);
}

async function refreshQueue() {
  const el = document.getElementById("queue");
  try {
    const r = await fetch("/api/queue");
    if (r.ok) {
      const q = await r.json();
      el.textContent = q.running
        ? `running: ${q.running.experiment}` + (q.waiting.length ? `, ${q.waiting.length} waiting (${q.waiting.map((w) => w.experiment).join(", ")})` : "")
        : "";
    }
  } catch { /* the lab stopped; the next poll tries again */ }
}

async function machine() {
  try {
    const r = await fetch("/api/machine");
    if (r.ok) document.getElementById("machine").textContent = machineLine(await r.json()).replace("Measured on", "This lab runs on");
  } catch { /* shown on each result anyway */ }
}

theme();
window.addEventListener("hashchange", route);
route();
machine();
pollQueue();
window.addEventListener("stampede:queue", refreshQueue);
