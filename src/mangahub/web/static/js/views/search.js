import * as api from "../api.js";
import { h, clear, cover, debounce, label, select, field } from "../dom.js";

export const STATUSES = ["ongoing", "completed", "hiatus", "cancelled"];
export const FORMATS = ["manga", "manhwa", "manhua", "one_shot", "novel", "doujinshi", "other"];
const SORTS = [["popularity", "Popularity"], ["rating", "Rating"], ["title", "Title"],
  ["updated", "Recently updated"], ["chapters", "Chapters"]];

let genresCache = null;
async function genres() {
  if (!genresCache) genresCache = await api.get("/api/genres").catch(() => []);
  return genresCache;
}

export function searchView() {
  const params = new URLSearchParams(sessionStorage.getItem("mh-search") || "");
  const q = h("input", { type: "search", name: "q", value: params.get("q") || "",
    placeholder: "Title, alt title or author", autocomplete: "off" });
  const saved = params.get("genres") || "";
  const genre = select("genres", [["", "Any genre"], ...(saved ? [[saved, saved]] : [])], saved);
  genres().then((all) => { // the first results need not wait for the genre list
    for (const g of all) if (g.name !== saved) genre.append(h("option", { value: g.name }, g.name));
  });
  const status = select("status", [["", "Any status"], ...STATUSES.map((s) => [s, label(s)])], params.get("status") || "");
  const format = select("format", [["", "Any format"], ...FORMATS.map((s) => [s, label(s)])], params.get("format") || "");
  const year = h("input", { type: "number", name: "year", min: 1900, max: 2100, inputMode: "numeric",
    value: params.get("year") || "", placeholder: "Any" });
  const sort = select("sort_by", SORTS, params.get("sort_by") || "popularity");
  const results = h("ul.grid", { "aria-label": "Search results" });
  const summary = h("p.muted", { role: "status", "aria-live": "polite" });
  const more = h("button.ghost", { type: "button", hidden: true }, "More results");
  let page = 1;
  let seq = 0;

  async function run(append = false) {
    const mine = ++seq;
    page = append ? page + 1 : 1;
    const query = { q: q.value.trim(), genres: genre.value, status: status.value, format: format.value,
      year: year.value, sort_by: sort.value, page, page_size: 24 };
    sessionStorage.setItem("mh-search", new URLSearchParams(
      Object.entries(query).filter(([k, v]) => v && k !== "page" && k !== "page_size")).toString());
    try {
      const body = await api.get("/api/manga/advanced-search", query);
      if (mine !== seq) return; // a newer query already answered
      if (!append) clear(results);
      results.dataset.query = query.q; // which query the shown results answer
      for (const m of body.data) results.append(card(m));
      summary.textContent = body.total === 0 ? "No series found." : `${body.total} series`;
      more.hidden = page * body.page_size >= body.total;
    } catch (err) {
      if (mine === seq) summary.textContent = err.message;
    }
  }
  const soon = debounce(() => run(), 180);
  q.addEventListener("input", soon);
  year.addEventListener("input", soon);
  for (const el of [genre, status, format, sort]) el.addEventListener("change", () => run());
  more.addEventListener("click", () => run(true));
  const form = h("form.filters", { role: "search", on: { submit: (ev) => { ev.preventDefault(); run(); } } },
    field("Search", q), field("Genre", genre), field("Status", status), field("Format", format),
    field("Year", year), field("Sort by", sort));
  run();
  return {
    title: "Search",
    node: h("section", h("h1", "Find a series"), form, summary, results, more),
  };
}

export function card(m) {
  return h("li.tile", h("a", { href: `#/series/${m.id}` },
    cover(m),
    h("span.tile-title", m.title),
    h("span.tile-meta", [label(m.format), label(m.status),
      m.total_chapters ? `${m.total_chapters} ch.` : null].filter(Boolean).join(" · ")),
    m.average_rating ? h("span.tile-score", { "aria-label": `rated ${m.average_rating.toFixed(1)}` },
      `★ ${m.average_rating.toFixed(1)}`) : null));
}
