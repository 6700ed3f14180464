// The app shell: hash routes, navigation, theme, session start and the live feed.

import * as api from "./api.js";
import * as live from "./live.js";
import { h, clear, toast } from "./dom.js";
import { authView } from "./views/auth.js";
import { searchView } from "./views/search.js";
import { seriesView } from "./views/series.js";
import { listView } from "./views/list.js";
import { notificationsView, unread } from "./views/notifications.js";
import { transferView } from "./views/transfer.js";
import { profileView } from "./views/profile.js";
import { adminView } from "./views/admin.js";

const routes = [
  [/^\/signin$/, () => authView("signin"), false],
  [/^\/signup$/, () => authView("signup"), false],
  [/^\/search$/, () => searchView(), false],
  [/^\/series\/(\d+)$/, (m) => seriesView(Number(m[1])), false],
  [/^\/list$/, () => listView(), true],
  [/^\/notifications$/, () => notificationsView(), true],
  [/^\/import-export$/, () => transferView(), true],
  [/^\/profile$/, () => profileView(), true],
  [/^\/admin$/, () => adminView(), true],
];

let cleanup = null;
let renderSeq = 0;

async function render() {
  const mine = ++renderSeq;
  const path = location.hash.replace(/^#/, "") || "/search";
  const main = document.getElementById("main");
  if (cleanup) { try { cleanup(); } catch { /* a view's teardown must not block the next */ } }
  cleanup = null;
  for (const [re, view, needsUser] of routes) {
    const m = path.match(re);
    if (!m) continue;
    if (needsUser && !api.currentUser()) {
      location.hash = `#/signin?next=${encodeURIComponent(path)}`;
      return;
    }
    markNav(path);
    try {
      const out = await view(m);
      if (mine !== renderSeq) { if (out && out.cleanup) out.cleanup(); return; } // navigated away meanwhile
      cleanup = (out && out.cleanup) || null;
      clear(main, out.node);
      document.title = out.title ? `${out.title} · MangaHub` : "MangaHub";
      main.focus({ preventScroll: true });
      window.scrollTo(0, 0);
    } catch (err) {
      if (mine !== renderSeq) return;
      clear(main, h("section.card", h("h1", "Something went wrong"), h("p", err.message)));
    }
    return;
  }
  const q = path.match(/^\/signin\?next=(.*)$/);
  if (q) { const out = authView("signin", decodeURIComponent(q[1])); clear(main, out.node); return; }
  clear(main, h("section.card", h("h1", "Not found"), h("p", h("a", { href: "#/search" }, "Back to search"))));
}

function navItems() {
  const user = api.currentUser();
  const items = [["#/search", "Search"]];
  if (user) {
    items.push(["#/list", "My list"]);
    items.push(["#/notifications", "Notifications"]);
    items.push(["#/import-export", "Import / export"]);
    items.push(["#/profile", user.username]);
    if (user.role === "admin") items.push(["#/admin", "Admin"]);
  } else {
    items.push(["#/signin", "Sign in"], ["#/signup", "Sign up"]);
  }
  return items;
}

function drawNav() {
  const nav = document.getElementById("nav");
  clear(nav, navItems().map(([href, text]) => {
    const a = h("a", { href }, text);
    if (href === "#/notifications") a.append(" ", h("span#unread.badge", { hidden: true }));
    return h("li", a);
  }));
  if (api.currentUser()) {
    nav.append(h("li", h("button.ghost#signout", { type: "button", on: { click: signOut } }, "Sign out")));
    refreshUnread();
  }
  markNav(location.hash.replace(/^#/, ""));
}

function markNav(path) {
  for (const a of document.querySelectorAll("#nav a")) {
    const here = path.startsWith(a.getAttribute("href").slice(1));
    if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

async function refreshUnread() {
  const badge = document.getElementById("unread");
  if (!badge) return;
  try {
    const n = await unread();
    badge.textContent = String(n);
    badge.hidden = n === 0;
    badge.setAttribute("aria-label", `${n} unread`);
  } catch { /* the badge is a hint */ }
}

async function signOut() {
  live.stop();
  try { await api.signOut(); } catch (err) { toast(err.message, "error"); }
  location.hash = "#/signin";
  toast("Signed out");
}

function theme() {
  const saved = sessionStorage.getItem("mh-theme");
  if (saved) document.documentElement.dataset.theme = saved;
  document.getElementById("theme").addEventListener("click", () => {
    const dark = document.documentElement.dataset.theme
      ? document.documentElement.dataset.theme === "dark"
      : matchMedia("(prefers-color-scheme: dark)").matches;
    const next = dark ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    sessionStorage.setItem("mh-theme", next);
  });
}

function liveStatus() {
  const box = document.getElementById("live-status");
  live.on("open", () => { box.textContent = ""; box.dataset.state = "live"; });
  live.on("close", () => { if (api.currentUser()) { box.textContent = "Reconnecting…"; box.dataset.state = "down"; } });
  live.on("notification", (msg) => {
    toast(`${msg.data.title}: ${msg.data.message}`);
    refreshUnread();
  });
}

async function boot() {
  theme();
  liveStatus();
  document.addEventListener("mh:unread", refreshUnread);
  api.onSession((user) => {
    drawNav();
    if (user) live.start(); else live.stop();
  });
  await api.refresh().catch(() => null);
  drawNav();
  window.addEventListener("hashchange", render);
  await render();
  document.body.dataset.ready = "true";
}

boot();
