import * as api from "../api.js";
import * as live from "../live.js";
import { h, clear, cover, label, chapterText, when, toast, select, field } from "../dom.js";

export const READING = ["reading", "completed", "plan_to_read", "on_hold", "dropped"];

export async function seriesView(id) {
  const manga = await api.get(`/api/manga/${id}`);
  const user = api.currentUser();
  const offs = [];
  const node = h("article.series",
    h("div.series-head", cover(manga, "large"), details(manga)),
    user ? await listPanel(manga, offs) : h("p.card", h("a", { href: "#/signin" }, "Sign in"), " to track this series."),
    manga.description ? h("section.card", h("h2", "About"), h("p.description", manga.description)) : null,
    h("div.columns", await chapters(manga), await comments(manga, user)),
    user ? chat(manga, offs) : null);
  return { title: manga.title, node, cleanup: () => offs.forEach((off) => off()) };
}

function details(m) {
  const facts = [
    ["Status", label(m.status)], ["Format", label(m.format)], ["Year", m.year],
    ["Chapters", m.total_chapters], ["Volumes", m.volumes],
    ["Score", m.average_rating ? `${m.average_rating.toFixed(2)} (${m.rating_count})` : "—"],
    ["Popularity", m.popularity],
  ].filter(([, v]) => v !== null && v !== undefined && v !== "");
  return h("div.series-info",
    h("h1", m.title),
    m.alt_titles && m.alt_titles.length ? h("p.muted", m.alt_titles.slice(0, 4).join(" · ")) : null,
    m.authors.length ? h("p", "by ", m.authors.join(", ")) : null,
    h("dl.facts", facts.map(([k, v]) => h("div", h("dt", k), h("dd", String(v))))),
    h("ul.tags", { "aria-label": "Genres" }, m.genres.map((g) => h("li", g))));
}

async function loadEntry(id) {
  try {
    return await api.get(`/api/library/${id}`);
  } catch (err) {
    if (err.status === 404) return null;
    if (err.status !== 405) throw err;
  }
  // Servers without the one-entry route: the progress view carries the same chapter.
  try {
    return { ...(await api.get(`/api/users/progress/${id}`)), compat: true };
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

// Whether `next` may replace the entry shown: a push may arrive after the answer to
// a later write, and an older version must not put its chapter back.
export function isNewer(current, next) {
  return !current || current.version === undefined || next.version > current.version;
}

async function listPanel(manga, offs) {
  let entry = await loadEntry(manga.id);
  const total = manga.total_chapters;
  const chapter = h("output#chapter", { "aria-live": "polite" });
  const bar = h("progress#progress-bar", { max: total || 1, value: 0, "aria-label": "Reading progress" });
  const status = select("status", [["", "Not in my list"], ...READING.map((s) => [s, label(s)])], "");
  status.id = "entry-status";
  const plus = h("button.primary#plus-one", { type: "button" }, "+1 chapter");
  const input = h("input#chapter-input", { type: "number", min: 0, step: "0.1", inputMode: "decimal",
    name: "chapter", required: true });
  const score = select("score", [["", "No score"], ...Array.from({ length: 10 }, (_, i) => [String(10 - i), String(10 - i)])], "");
  score.id = "entry-score";
  const remove = h("button.ghost.danger#remove", { type: "button" }, "Remove from list");
  const notes = h("textarea#entry-notes", { name: "notes", rows: 2, maxLength: 10000 });
  const notesForm = h("form.stack", { on: { submit: async (ev) => {
    ev.preventDefault();
    if (!entry) { toast("Add the series to your list first", "error"); return; }
    try {
      entry = { ...entry, ...(await api.patch(`/api/library/${manga.id}`, { notes: notes.value })) };
      toast("Notes saved");
    } catch (err) { toast(err.message, "error"); }
  } } }, field("My notes (only you see them)", notes), h("button", { type: "submit" }, "Save notes"));

  function draw() {
    const ch = entry ? Number(entry.chapter ?? 0) : 0;
    chapter.textContent = total ? `Chapter ${chapterText(ch)} of ${total}` : `Chapter ${chapterText(ch)}`;
    bar.max = total || 1;
    bar.value = total ? Math.min(ch, total) : 0;
    bar.hidden = !total; // no bar for a series whose length is unknown
    status.value = entry ? entry.status : "";
    if (document.activeElement !== input) input.value = entry ? chapterText(ch) : "";
    if (entry && entry.score) score.value = String(entry.score);
    remove.hidden = !entry;
    notesForm.hidden = !entry || entry.notes === undefined;
    if (entry && entry.notes !== undefined && document.activeElement !== notes) notes.value = entry.notes;
  }
  async function writeProgress(value) {
    try {
      const written = await api.put("/api/users/progress", { manga_id: manga.id, chapter: value });
      if (isNewer(entry, written)) entry = { ...(entry || {}), ...written };
      draw();
    } catch (err) { toast(err.message, "error"); }
  }
  plus.addEventListener("click", () => writeProgress(Number(entry ? entry.chapter ?? 0 : 0) + 1));
  const setForm = h("form.inline", { on: { submit: (ev) => {
    ev.preventDefault();
    const value = Number(input.value);
    if (!Number.isFinite(value) || value < 0) { toast("Enter a chapter number, e.g. 12 or 12.5", "error"); return; }
    writeProgress(value);
  } } }, field("Chapter", input), h("button", { type: "submit" }, "Set"));
  status.addEventListener("change", async () => {
    try {
      if (!status.value) { await api.del(`/api/library/${manga.id}`); entry = null; }
      else if (!entry) entry = { chapter: 0, ...(await api.post("/api/library", { manga_id: manga.id, status: status.value })) };
      else entry = { ...entry, ...(await api.patch(`/api/library/${manga.id}`, { status: status.value })) };
      draw();
      toast(entry ? `Status: ${label(entry.status)}` : "Removed from your list");
    } catch (err) { toast(err.message, "error"); draw(); }
  });
  score.addEventListener("change", async () => {
    if (!score.value) return;
    try {
      await api.put(`/api/manga/${manga.id}/rating`, { score: Number(score.value) });
      entry = entry ? { ...entry, score: Number(score.value) } : entry;
      toast(`Scored ${score.value}/10`);
    } catch (err) { toast(err.message, "error"); }
  });
  remove.addEventListener("click", async () => {
    try { await api.del(`/api/library/${manga.id}`); entry = null; draw(); toast("Removed from your list"); }
    catch (err) { toast(err.message, "error"); }
  });
  offs.push(live.on("progress", (msg) => {
    if (msg.data && msg.data.manga_id === manga.id && isNewer(entry, msg.data)) { entry = { ...(entry || {}), ...msg.data }; draw(); }
  }));
  draw();
  return h("section.card.entry", { "aria-label": "My reading" },
    h("div.entry-row", chapter, plus), bar,
    h("div.entry-row.wrap", setForm, field("List status", status), field("My score", score), remove),
    notesForm);
}

async function chapters(manga) {
  const list = h("ol.chapters");
  const more = h("button.ghost", { type: "button", hidden: true }, "More chapters");
  let page = 0;
  async function load() {
    page += 1;
    const body = await api.get(`/api/manga/${manga.id}/chapters`, { page, page_size: 50 });
    for (const c of body.data) {
      list.append(h("li", h("span.num", `Ch. ${chapterText(c.number)}`), " ",
        c.title ? h("span", c.title) : null, c.published_at ? h("small.muted", ` ${when(c.published_at)}`) : null));
    }
    more.hidden = page * 50 >= body.total;
    if (!body.total) list.append(h("li.muted", "No chapters listed yet."));
  }
  more.addEventListener("click", load);
  await load().catch(() => list.append(h("li.muted", "Chapters unavailable.")));
  return h("section.card", h("h2", "Chapters"), list, more);
}

async function comments(manga, user) {
  if (!user) {  // the comments API is for signed-in readers
    return h("section.card", h("h2", "Comments"),
      h("p", h("a", { href: "#/signin" }, "Sign in"), " to read and post comments."));
  }
  const list = h("ul.comments#comments");
  const body = await api.get(`/api/manga/${manga.id}/comments`, { page_size: 50 });
  const row = (c) => h("li", h("p.comment-head", h("strong", c.username), " ", h("small.muted", when(c.created_at))),
    h("p.comment-body", c.content));
  for (const c of body.data) list.append(row(c));
  const text = h("textarea#comment-text", { name: "content", rows: 3, maxLength: 2000, required: true });
  const form = h("form.stack", { on: { submit: async (ev) => {
    ev.preventDefault();
    try {
      const c = await api.post(`/api/manga/${manga.id}/comments`, { content: text.value });
      list.prepend(row(c));
      text.value = "";
    } catch (err) { toast(err.message, "error"); }
  } } }, field("Add a comment", text), h("button", { type: "submit" }, "Post comment"));
  return h("section.card", h("h2", "Comments"), form, list);
}

function chat(manga, offs) {
  const room = manga.id;
  const log = h("ol.chat-log#chat-log", { "aria-live": "polite", "aria-label": "Chat messages", tabindex: 0 });
  const who = h("ul.presence#presence", { "aria-label": "In the room" });
  const text = h("input#chat-text", { name: "content", maxLength: 2000, autocomplete: "off", required: true });
  const add = (m) => {
    const mine = m.username === (api.currentUser() || {}).username;
    log.append(h("li", { class: mine ? "mine" : "" }, h("strong", m.username), " ",
      h("span", m.content), h("small.muted", ` ${when(m.timestamp)}`)));
    log.scrollTop = log.scrollHeight;
  };
  const mineRoom = (m) => m.room_id === room;
  offs.push(live.on("history", (m) => { if (mineRoom(m)) { clear(log); m.messages.forEach(add); } }));
  offs.push(live.on("chat", (m) => { if (mineRoom(m)) add(m); }));
  offs.push(live.on("system", (m) => { if (mineRoom(m)) log.append(h("li.system", m.content)); }));
  offs.push(live.on("presence", (m) => { if (mineRoom(m)) clear(who, m.users.map((u) => h("li", u))); }));
  offs.push(live.on("error", (m) => toast(m.message, "error")));
  live.join(room);
  offs.push(() => live.leave(room));
  const form = h("form.inline", { on: { submit: (ev) => {
    ev.preventDefault();
    if (!text.value.trim()) return;
    if (live.send({ type: "chat", room_id: room, content: text.value })) text.value = "";
    else toast("Not connected; retrying…", "error");
  } } }, field("Message", text), h("button", { type: "submit" }, "Send"));
  return h("section.card.chat", { "aria-label": "Chat room" }, h("h2", "Chat room"),
    h("div.chat-body", log, h("aside", h("h3", "Here now"), who)), form);
}
