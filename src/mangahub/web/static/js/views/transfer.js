import * as api from "../api.js";
import { h, clear, field, select, toast } from "../dom.js";

export function transferView() {
  const file = h("input#import-file", { type: "file", name: "file", required: true,
    accept: ".xml,.gz,.json,application/json,application/xml,application/gzip" });
  const mode = select("mode", [["merge", "Merge into my list"], ["replace", "Replace my list"]], "merge");
  const dry = h("input", { type: "checkbox", name: "dry_run" });
  const report = h("div#import-report", { role: "status", "aria-live": "polite" });
  const submit = h("button.primary", { type: "submit" }, "Import");
  const form = h("form.stack", { on: { submit: async (ev) => {
    ev.preventDefault();
    if (!file.files.length) return;
    const data = new FormData();
    data.append("file", file.files[0]);
    const qs = new URLSearchParams({ mode: mode.value, dry_run: String(dry.checked) });
    submit.disabled = true;
    clear(report, h("p.muted", "Importing…"));
    try {
      const r = await api.request("POST", `/api/library/import?${qs}`, data);
      clear(report, h("h2", dry.checked ? "Dry run report" : "Import report"),
        h("dl.facts", [["Imported", r.imported], ["Updated", r.updated], ["New series", r.created_series],
          ["Skipped", r.skipped.length]].map(([k, v]) => h("div", h("dt", k), h("dd", String(v))))),
        r.skipped.length ? h("details", h("summary", "Skipped entries"),
          h("ul", r.skipped.map((s) => h("li", h("strong", s.title || "(untitled)"), ` — ${s.reason}`)))) : null);
    } catch (err) {
      clear(report, h("p.error", err.message));
    } finally {
      submit.disabled = false;
    }
  } } },
  field("List file", file, "A MyAnimeList XML export (.xml or .xml.gz), an AniList JSON export or a MangaHub JSON export"),
  field("Mode", mode), h("label.check", dry, " Dry run (report only, change nothing)"), submit);

  const download = async (format) => {
    try {
      const res = await api.request("GET", `/api/library/export?format=${format}`, undefined, { raw: true });
      const blob = await res.blob();
      const name = (res.headers.get("Content-Disposition") || "").match(/filename="?([^";]+)"?/);
      const a = h("a", { href: URL.createObjectURL(blob), download: name ? name[1] : `mangahub-list.${format === "mal" ? "xml" : "json"}` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    } catch (err) { toast(err.message, "error"); }
  };
  return {
    title: "Import and export",
    node: h("section", h("h1", "Import and export"),
      h("div.columns",
        h("section.card", h("h2", "Import a list"), form, report),
        h("section.card", h("h2", "Export my list"),
          h("p", "Download your whole list. MyAnimeList's own import accepts the XML file."),
          h("div.row",
            h("button#export-mal", { type: "button", on: { click: () => download("mal") } }, "MyAnimeList XML"),
            h("button#export-json", { type: "button", on: { click: () => download("json") } }, "MangaHub JSON"))))),
  };
}
