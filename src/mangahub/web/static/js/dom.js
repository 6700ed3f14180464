// Building DOM without HTML strings: every piece of data goes in as text, never as markup.

/** h("div.card#x", {attrs, on: {click}}, ...children): an element; strings become text nodes. */
export function h(tag, props, ...children) {
  const [name, ...rest] = tag.split(/(?=[.#])/);
  const el = document.createElement(name || "div");
  for (const part of rest) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  if (props && (typeof props !== "object" || props instanceof Node || Array.isArray(props))) {
    children.unshift(props);
    props = null;
  }
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === "text") el.textContent = String(value);
    else if (key === "class") el.className = value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const item = h("div.toast", { class: `toast ${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), 4000);
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** "plan_to_read" → "Plan to read". */
export const label = (s) => {
  const text = String(s ?? "").replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
};

export function chapterText(n) {
  if (n === null || n === undefined) return "0";
  return Number.isInteger(n) ? String(n) : String(Number(n.toFixed(2)));
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** A cover, always from this origin (the server keeps a copy), drawn over a tile with
 * the title's initials: the tile shows until the image loads, and for good when it
 * cannot (offline, no cover). */
export function cover(manga, size = "") {
  const tile = h("div", { class: `cover placeholder ${size}`, "aria-hidden": "true" },
    initials(manga.title));
  tile.style.setProperty("--hue", String((Number(manga.id) * 47) % 360));
  if (!manga.cover_url || !manga.id) return tile;
  const img = h("img", { src: `/covers/${manga.id}`, alt: "", loading: "lazy" });
  img.addEventListener("error", () => img.remove(), { once: true });
  tile.append(img);
  return tile;
}

function initials(title) {
  return String(title || "?").split(/\s+/).filter(Boolean).slice(0, 2)
    .map((w) => [...w][0].toUpperCase()).join("");
}

export function field(labelText, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h("div.field", h("label", { for: id }, labelText), control,
    hint ? h("small.muted", hint) : null);
}

export function select(name, options, value) {
  const el = h("select", { name });
  for (const [v, text] of options) el.append(h("option", { value: v, selected: v === value }, text));
  return el;
}
