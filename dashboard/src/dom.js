// The page's only way to make DOM: elements with properties and children, where
// every string becomes a text node. Nothing is ever parsed as HTML, so a key named
// <img src=x onerror=alert(1)> is shown as exactly that.

const SVG = "http://www.w3.org/2000/svg";

function fill(el, props, children) {
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.setAttribute("class", v);
    else if (typeof v === "boolean") el.toggleAttribute(k, v);
    else if (k === "value" || k === "checked") el[k] = v;
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An HTML element: h("button", { onclick }, "Save"). */
export const h = (tag, props, ...children) => fill(document.createElement(tag), props, children);

/** An SVG element, for the chart. */
export const svg = (tag, props, ...children) => fill(document.createElementNS(SVG, tag), props, children);

/** Replaces everything inside `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  return fill(el, {}, children);
}

/** Announces `text` to assistive technology (and shows it in the status line). */
export function announce(text) {
  const live = document.getElementById("status");
  if (live) live.textContent = text;
}

const units = [
  ["year", 31_536_000_000],
  ["month", 2_592_000_000],
  ["day", 86_400_000],
  ["hour", 3_600_000],
  ["minute", 60_000],
  ["second", 1000],
];
const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

/** "3 minutes ago" / "in 30 days", or "never". */
export function ago(iso, now = Date.now()) {
  if (!iso) return "never";
  const diff = Date.parse(iso) - now;
  if (Math.abs(diff) < 10_000) return "just now";
  for (const [unit, ms] of units) {
    if (Math.abs(diff) >= ms || unit === "second") return relative.format(Math.round(diff / ms), unit);
  }
  return iso;
}

/** A time shown relatively, with the exact time on hover. */
export function time(iso, fallback = "never") {
  if (!iso) return h("span", { class: "muted" }, fallback);
  return h("time", { datetime: iso, title: new Date(iso).toUTCString() }, ago(iso));
}

/** "2026-11-23 14:05 UTC" */
export const exact = (iso) => (iso ? iso.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC") : "—");

let ids = 0;

/** A labelled form control, with an optional hint the control is described by. */
export function field(text, control, hint) {
  if (!control.id) control.id = `f${++ids}`;
  const note = hint ? h("small", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  if (note) control.setAttribute("aria-describedby", note.id);
  return h("div", { class: "field" }, h("label", { class: "label", for: control.id }, text), control, note);
}

/** A <select> of [value, label] pairs. */
export function select(props, options) {
  return h("select", props, options.map(([value, label]) => h("option", { value, selected: value === props.value }, label)));
}

/** A status badge: active, inactive, revoked, expired, suspended. */
export const badge = (status) => h("span", { class: `badge badge-${status}` }, status);
