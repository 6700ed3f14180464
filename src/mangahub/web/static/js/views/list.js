import * as api from "../api.js";
import * as live from "../live.js";
import { h, clear, cover, label, chapterText, debounce, toast, select, field } from "../dom.js";
import { READING, isNewer } from "./series.js";

const SORTS = [["updated", "Last updated"], ["title", "Title"], ["score", "Score"],
  ["progress", "Progress"], ["added", "Date added"]];

export async function listView() {
  let status = sessionStorage.getItem("mh-list-status") || "";
  const tabs = h("div.tabs", { role: "tablist", "aria-label": "Status" });
  const q = h("input", { type: "search", name: "q", placeholder: "Filter by title", autocomplete: "off" });
  const sort = select("sort_by", SORTS, sessionStorage.getItem("mh-list-sort") || "updated");
  const rows = h("ul.entries#entries");
  const summary = h("p.muted", { role: "status" });
  const byId = new Map();

  function drawTabs() {
    clear(tabs, [["", "All"], ...READING.map((s) => [s, label(s)])].map(([value, text]) =>
      h("button", { type: "button", role: "tab", "aria-selected": String(value === status),
        on: { click: () => { status = value; sessionStorage.setItem("mh-list-status", value); drawTabs(); load(); } } }, text)));
  }

  async function load() {
    const body = await api.get("/api/library", { status, q: q.value.trim(), sort_by: sort.value, page_size: 100 });
    let entries = body.data;
    if (entries.some((e) => e.chapter === undefined)) entries = await withProgress(entries);
    // Servers that ignore the filters still get them applied here.
    entries = entries.filter((e) => (!status || e.status === status)
      && (!q.value.trim() || e.manga.title.toLowerCase().includes(q.value.trim().toLowerCase())));
    byId.clear();
    clear(rows, entries.map((e) => { const r = row(e); byId.set(e.manga_id, r); return r.node; }));
    summary.textContent = entries.length ? `${entries.length} series` : "Nothing here yet. Find a series in Search and add it.";
  }

  function row(e) {
    const m = e.manga;
    const chapterOut = h("span.chapter");
    const bar = h("progress", { "aria-label": `Progress of ${m.title}` });
    const statusText = h("span.badge.status");
    const plus = h("button.small", { type: "button", "aria-label": `+1 chapter of ${m.title}` }, "+1");
    const r = { entry: e, node: null, draw: null };
    r.draw = () => {
      const ch = Number(r.entry.chapter ?? 0);
      const total = m.total_chapters;
      chapterOut.textContent = total ? `${chapterText(ch)} / ${total}` : chapterText(ch);
      bar.max = total || 1;
      bar.value = total ? Math.min(ch, total) : 0;
      bar.classList.toggle("unknown", !total); // length unknown: an empty track
      statusText.textContent = label(r.entry.status);
    };
    plus.addEventListener("click", async () => {
      try {
        const written = await api.put("/api/users/progress", { manga_id: m.id, chapter: Number(r.entry.chapter ?? 0) + 1 });
        if (isNewer(r.entry, written)) r.entry = { ...r.entry, ...written };
        r.draw();
      } catch (err) { toast(err.message, "error"); }
    });
    r.node = h("li.entry", { "data-manga": String(m.id) }, cover(m, "small"),
      h("div.entry-main", h("a", { href: `#/series/${m.id}` }, m.title), h("div.entry-meta", statusText,
        r.entry.score ? h("span", `★ ${r.entry.score}`) : null), bar),
      h("div.entry-side", chapterOut, plus));
    r.draw();
    return r;
  }

  const off = live.on("progress", (msg) => {
    const r = byId.get(msg.data && msg.data.manga_id);
    if (!r) load().catch(() => null);
    else if (isNewer(r.entry, msg.data)) { r.entry = { ...r.entry, ...msg.data }; r.draw(); }
  });
  q.addEventListener("input", debounce(() => load(), 200));
  sort.addEventListener("change", () => { sessionStorage.setItem("mh-list-sort", sort.value); load(); });
  drawTabs();
  await load();
  return {
    title: "My list",
    node: h("section", h("h1", "My list"), tabs,
      h("div.filters", field("Filter", q), field("Sort by", sort)), summary, rows),
    cleanup: off,
  };
}

async function withProgress(entries) {
  const body = await api.get("/api/users/progress", { page_size: 100 }).catch(() => ({ data: [] }));
  const chapters = new Map(body.data.map((p) => [p.manga_id, p]));
  return entries.map((e) => ({ ...e, chapter: (chapters.get(e.manga_id) || {}).chapter ?? 0 }));
}
