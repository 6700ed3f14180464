import * as api from "../api.js";
import { h, clear, when, field, select, toast } from "../dom.js";
import { STATUSES } from "./search.js";

export async function adminView() {
  const jobs = h("tbody");
  async function loadJobs() {
    const body = await api.get("/api/admin/sync");
    clear(jobs, body.data.map((j) => h("tr", h("th", { scope: "row" }, j.sync_type), h("td", j.status),
      h("td", when(j.last_run_at) || "never"), h("td", when(j.last_success_at) || "never"), h("td", j.error || ""))));
  }
  await loadJobs();

  const id = h("input#edit-id", { type: "number", min: 1, name: "id", required: true });
  const editor = h("div#editor");
  const load = h("form.inline", { on: { submit: async (ev) => {
    ev.preventDefault();
    try { clear(editor, editForm(await api.get(`/api/manga/${id.value}`))); }
    catch (err) { clear(editor, h("p.error", err.message)); }
  } } }, field("Series id", id), h("button", { type: "submit" }, "Load"));

  return {
    title: "Admin",
    node: h("section", h("h1", "Admin"),
      h("section.card", h("h2", "Sync jobs"),
        h("div.table-wrap", h("table", h("thead", h("tr", ["Job", "Status", "Last run", "Last success", "Error"].map((t) => h("th", { scope: "col" }, t)))), jobs)),
        h("button.ghost", { type: "button", on: { click: loadJobs } }, "Refresh")),
      h("section.card", h("h2", "Edit a catalog series"), load, editor)),
  };
}

function editForm(m) {
  const title = h("input", { name: "title", value: m.title, required: true, maxLength: 500 });
  const status = select("status", STATUSES.map((s) => [s, s]), m.status);
  const total = h("input", { type: "number", min: 0, name: "total_chapters", value: m.total_chapters ?? "" });
  const year = h("input", { type: "number", min: 1800, max: 2200, name: "year", value: m.year ?? "" });
  const description = h("textarea", { name: "description", rows: 5, maxLength: 20000 });
  description.value = m.description || "";
  return h("form.stack", { on: { submit: async (ev) => {
    ev.preventDefault();
    const body = { title: title.value, status: status.value, description: description.value,
      total_chapters: total.value === "" ? null : Number(total.value), year: year.value === "" ? null : Number(year.value) };
    try { await api.patch(`/api/manga/${m.id}`, body); toast("Saved"); }
    catch (err) { toast(err.message, "error"); }
  } } }, field("Title", title), field("Status", status), field("Total chapters", total), field("Year", year),
  field("Description", description), h("button.primary", { type: "submit" }, "Save"));
}
