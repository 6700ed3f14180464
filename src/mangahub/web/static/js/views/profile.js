import * as api from "../api.js";
import { h, when, label } from "../dom.js";
import { READING } from "./series.js";

export async function profileView() {
  const me = await api.get("/api/users/me");
  const list = await api.get("/api/library", { page_size: 100 }).catch(() => ({ data: [], total: 0 }));
  const counts = new Map(READING.map((s) => [s, 0]));
  for (const e of list.data) counts.set(e.status, (counts.get(e.status) || 0) + 1);
  return {
    title: "Profile",
    node: h("section.card.narrow", h("h1", me.username),
      h("dl.facts", [["Email", me.email], ["Role", me.role], ["Member since", when(me.created_at)],
        ["Series in list", list.total]].map(([k, v]) => h("div", h("dt", k), h("dd", String(v))))),
      h("h2", "By status"),
      h("ul.stat-list", [...counts].map(([s, n]) => h("li", h("a", { href: "#/list" }, label(s)), h("span", String(n)))))),
  };
}
