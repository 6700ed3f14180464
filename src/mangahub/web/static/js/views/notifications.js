import * as api from "../api.js";
import * as live from "../live.js";
import { h, clear, when, label, toast } from "../dom.js";

export async function unread() {
  const body = await api.get("/api/notifications", { unread: true, page_size: 1 });
  return body.total;
}

export async function notificationsView() {
  const list = h("ul.notifications#notifications");
  const readAll = h("button.ghost", { type: "button" }, "Mark all read");
  const row = (n) => {
    const mark = h("button.small", { type: "button", hidden: n.read, "aria-label": `Mark read: ${n.title}` }, "Mark read");
    const li = h("li", { class: n.read ? "read" : "unread" },
      h("p", h("span.badge", label(n.kind)), " ", h("strong", n.title), " ", h("small.muted", when(n.created_at))),
      h("p", n.message),
      n.manga_id ? h("a", { href: `#/series/${n.manga_id}` }, "Open series") : null, " ", mark);
    mark.addEventListener("click", async () => {
      try { await api.post(`/api/notifications/${n.id}/read`); li.className = "read"; mark.hidden = true; bumpBadge(); }
      catch (err) { toast(err.message, "error"); }
    });
    return li;
  };
  async function load() {
    const body = await api.get("/api/notifications", { page_size: 50 });
    clear(list, body.data.length ? body.data.map(row) : h("li.muted", "No notifications yet."));
  }
  readAll.addEventListener("click", async () => {
    await api.post("/api/notifications/read-all");
    await load();
    bumpBadge();
  });
  const off = live.on("notification", (msg) => {
    const empty = list.querySelector("li.muted");
    if (empty) empty.remove();
    list.prepend(row(msg.data));
  });
  await load();
  return { title: "Notifications", node: h("section", h("h1", "Notifications"), readAll, list), cleanup: off };
}

function bumpBadge() {
  document.dispatchEvent(new Event("mh:unread"));
}
