// Tally's dashboard: built only on the public HTTP API (/api/v1/analytics/*). Every value from
// the API is rendered as text (textContent), never as HTML. The view (range, filters, tabs) lives
// in the URL query so that it can be bookmarked; the credential lives in sessionStorage only.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") e.textContent = v;
    else if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
};

// ---- credential -----------------------------------------------------------------------------

const KEY = "tally.key";
const SITE = "tally.site";

// `#key=…` (what `tally serve --demo` prints) signs in without a form; the fragment never
// reaches the server or its logs, and is removed from the address bar at once.
function takeFragment() {
  const h = new URLSearchParams(location.hash.slice(1));
  if (h.get("key")) {
    sessionStorage.setItem(KEY, h.get("key"));
    if (h.get("site")) sessionStorage.setItem(SITE, h.get("site"));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

const credential = () => sessionStorage.getItem(KEY);
const isToken = () => (credential() || "").startsWith("dft_");

// ---- view state in the URL ------------------------------------------------------------------

const PANELS = {
  sources: [
    { tab: "Referrers", col: "Referrer", ep: "referrers", key: "referrer", dim: "referrer" },
    { tab: "Campaigns", col: "Campaign", ep: "campaigns", key: "campaign", dim: null },
  ],
  pages: [
    { tab: "Pages", col: "Page", ep: "pages", key: "path", dim: "page" },
    { tab: "Hostnames", col: "Hostname", ep: "hostnames", key: "hostname", dim: "hostname" },
  ],
  locations: [
    { tab: "Countries", col: "Country", ep: "countries", key: "country", dim: "country" },
    { tab: "Regions", col: "Region", ep: "regions", key: "region", dim: "region" },
    { tab: "Cities", col: "City", ep: "cities", key: "city", dim: "city" },
  ],
  devices: [
    { tab: "Devices", col: "Device", ep: "devices", key: "device", dim: "device" },
    { tab: "Browsers", col: "Browser", ep: "browsers", key: "browser", dim: "browser" },
    { tab: "Systems", col: "Operating system", ep: "operating-systems", key: "operating_system", dim: "os" },
  ],
  goals: [{ tab: "Goals", col: "Goal", ep: "goals", key: "goal", dim: "goal" }],
};
const CAMPAIGN_FIELDS = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "ref", "source", "via"];
const METRICS = [
  { tab: "Visitors", field: "visitors" },
  { tab: "Sessions", field: "sessions" },
  { tab: "Revenue", field: "revenue" },
];
const PAGE = 10;

function readView() {
  const q = new URLSearchParams(location.search);
  const view = {
    site: q.get("site") || "",
    range: q.get("range") || "30d",
    from: q.get("from") || "",
    to: q.get("to") || "",
    metric: q.get("metric") || "visitors",
    filters: q.getAll("f").map((f) => {
      const i = f.indexOf(":");
      return i > 0 ? { dim: f.slice(0, i), value: f.slice(i + 1) } : null;
    }).filter(Boolean),
    tabs: {},
  };
  for (const p of Object.keys(PANELS)) view.tabs[p] = Number(q.get("tab_" + p) || 0) || 0;
  return view;
}

function writeView(view) {
  const q = new URLSearchParams();
  if (view.site) q.set("site", view.site);
  q.set("range", view.range);
  if (view.range === "custom") {
    q.set("from", view.from);
    q.set("to", view.to);
  }
  q.set("metric", view.metric);
  for (const f of view.filters) q.append("f", f.dim + ":" + f.value);
  for (const [p, t] of Object.entries(view.tabs)) if (t) q.set("tab_" + p, t);
  history.pushState(null, "", location.pathname + "?" + q);
}

// ---- API ------------------------------------------------------------------------------------

class ApiError extends Error {}

async function api(path, params = {}) {
  const q = new URLSearchParams(params);
  const site = sessionStorage.getItem(SITE);
  if (isToken() && site) q.set("websiteId", site);
  const res = await fetch("/api/v1/analytics/" + path + "?" + q, {
    headers: { Authorization: "Bearer " + credential() },
  });
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) {
    const msg = body && body.error && body.error.message ? body.error.message : res.statusText;
    const e = new ApiError(msg);
    e.status = res.status;
    throw e;
  }
  return body;
}

// The websites the credential reaches (Tally's `GET /api/v1/admin/websites`).
async function reachable() {
  const res = await fetch("/api/v1/admin/websites", { headers: { Authorization: "Bearer " + credential() } });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const e = new ApiError(body && body.error ? body.error.message : res.statusText);
    e.status = res.status;
    throw e;
  }
  return body.data || [];
}

// ---- ranges ---------------------------------------------------------------------------------

let zone = "UTC";

// Today's date (YYYY-MM-DD) in the website's zone.
function today() {
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date());
}
function addDays(day, n) {
  const d = new Date(day + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}
function daysBetween(a, b) {
  return Math.round((Date.parse(b + "T00:00:00Z") - Date.parse(a + "T00:00:00Z")) / 86400000);
}

// The range's API parameters, those of the period of the same length just before it (null for
// all time), and the time series interval.
function ranges(view) {
  const t = today();
  let from, to;
  switch (view.range) {
    case "today": from = to = t; break;
    case "24h": {
      const end = new Date();
      const start = new Date(end - 86400000);
      const prev = new Date(start - 86400000);
      return {
        current: { startAt: start.toISOString(), endAt: end.toISOString() },
        previous: { startAt: prev.toISOString(), endAt: new Date(start - 1).toISOString() },
        interval: "hour",
      };
    }
    case "7d": from = addDays(t, -6); to = t; break;
    case "month": from = t.slice(0, 8) + "01"; to = t; break;
    case "12mo": {
      const d = new Date(t.slice(0, 8) + "01T00:00:00Z");
      d.setUTCMonth(d.getUTCMonth() - 11);
      from = d.toISOString().slice(0, 10); to = t; break;
    }
    case "all": return { current: {}, previous: null, interval: "month" };
    case "custom":
      from = view.from || addDays(t, -29); to = view.to || t;
      if (to < from) [from, to] = [to, from];
      break;
    default: from = addDays(t, -29); to = t;
  }
  const days = daysBetween(from, to) + 1;
  return {
    current: { startAt: from, endAt: to },
    previous: { startAt: addDays(from, -days), endAt: addDays(from, -1) },
    interval: days <= 2 ? "hour" : days <= 92 ? "day" : days <= 400 ? "week" : "month",
  };
}

function filterParams(view) {
  const byDim = {};
  for (const f of view.filters) (byDim[f.dim] = byDim[f.dim] || []).push(f.value);
  const p = {};
  // A value holding a comma cannot be sent in the list syntax; it is left out of the filter.
  for (const [dim, values] of Object.entries(byDim)) {
    const ok = values.filter((v) => !v.includes(","));
    if (ok.length) p["filter_" + dim] = "is:" + ok.join(",");
  }
  return p;
}

// ---- rendering ------------------------------------------------------------------------------

let currency = "$";
const fmt = new Intl.NumberFormat("en-US");
const cents = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const money = (n) => currency + cents.format(n);
function duration(ms) {
  const s = Math.round(ms / 1000);
  return s < 60 ? s + "s" : Math.floor(s / 60) + "m " + (s % 60) + "s";
}

const KPIS = [
  { label: "Visitors", get: (o) => o.visitors, show: (v) => fmt.format(v) },
  { label: "Sessions", get: (o) => o.sessions, show: (v) => fmt.format(v) },
  { label: "Bounce rate", get: (o) => o.bounce_rate, show: (v) => v + "%" },
  { label: "Session duration", get: (o) => o.avg_session_duration, show: duration },
  { label: "Revenue", get: (o) => o.revenue, show: (v) => money(v) },
  { label: "Revenue per visitor", get: (o) => o.revenue_per_visitor, show: (v) => money(v) },
  { label: "Conversion rate", get: (o) => o.conversion_rate, show: (v) => v + "%" },
];

function renderKpis(now, before) {
  const box = $("kpis");
  box.replaceChildren();
  for (const k of KPIS) {
    const v = k.get(now);
    let change = "";
    if (before) {
      const b = k.get(before);
      change = b ? (v >= b ? "+" : "") + Math.round(((v - b) / b) * 1000) / 10 + "% vs previous" : "no previous data";
    }
    box.append(el("div", { class: "kpi", "data-kpi": k.label },
      el("div", { class: "label", text: k.label }),
      el("div", { class: "value", text: k.show(v) }),
      el("div", { class: "change", text: change })));
  }
}

let chart = null;
function renderChart(view, series) {
  const tabs = $("chart-tabs");
  tabs.replaceChildren(...METRICS.map((m) => el("button", {
    type: "button", "aria-selected": String(view.metric === m.field), text: m.tab,
    on: { click: () => { view.metric = m.field; writeView(view); refresh(); } },
  })));
  const rows = series.data || [];
  const xs = rows.map((r) => Date.parse(r.timestamp) / 1000);
  const ys = rows.map((r) => r[view.metric] || 0);
  const box = $("chart");
  if (chart) { chart.destroy(); chart = null; }
  box.replaceChildren();
  if (!window.uPlot) { box.append(el("p", { class: "empty", text: "Chart library not loaded" })); return; }
  const label = METRICS.find((m) => m.field === view.metric).tab;
  chart = new uPlot({
    width: Math.max(300, box.clientWidth || 800),
    height: 240,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zone),
    series: [{}, { label, stroke: getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#e8590c", width: 2, fill: "rgba(232,89,12,0.08)" }],
    axes: [{}, { size: 60 }],
  }, [xs, ys], box);
}

function rowLabel(def, row) {
  if (def.key === "campaign") {
    return CAMPAIGN_FIELDS.filter((f) => row.campaign[f]).map((f) => f + "=" + row.campaign[f]).join(" ") || "(none)";
  }
  if (def.key === "path") return row.hostname + row.path;
  return String(row[def.key] ?? "");
}

// The filters a click on `row` adds.
function rowFilters(def, row) {
  if (def.key === "campaign") {
    return CAMPAIGN_FIELDS.filter((f) => row.campaign[f]).map((f) => ({ dim: f, value: row.campaign[f] }));
  }
  return [{ dim: def.dim, value: String(row[def.key]) }];
}

async function renderPanel(name, view, params) {
  const box = document.querySelector(`[data-panel="${name}"]`);
  const defs = PANELS[name];
  const def = defs[Math.min(view.tabs[name], defs.length - 1)];
  const tabs = el("nav", { class: "tabs" }, ...defs.map((d, i) => el("button", {
    type: "button", "aria-selected": String(d === def), text: d.tab,
    on: { click: () => { view.tabs[name] = i; writeView(view); renderPanel(name, view, params); } },
  })));
  const extra = def.key === "goal" ? "Completions" : "Revenue";
  const body = el("tbody");
  const table = el("table", {}, el("thead", {}, el("tr", {},
    el("th", { text: def.col }), el("th", { class: "num", text: "Visitors" }),
    el("th", { class: "num", text: extra }))), body);
  const more = el("button", { type: "button", class: "more", text: "Show more", hidden: "" });
  const map = el("div", { class: "map-box" });
  box.replaceChildren(tabs, ...(def.ep === "countries" && window.topojson ? [map] : []), table, more);
  let offset = 0, top = 0;
  const load = async () => {
    const res = await api(def.ep, { ...params, limit: PAGE, offset });
    const rows = res.data || [];
    if (offset === 0 && rows.length === 0) body.append(el("tr", {}, el("td", { class: "empty", colspan: "3", text: "No data" })));
    for (const r of rows) {
      top = top || r.visitors || 1;
      const bar = el("span", { class: "bar" });
      bar.style.width = Math.max(1, Math.round((r.visitors / top) * 100)) + "%";
      const label = el("td", { class: "label" }, el("span", { text: rowLabel(def, r) }), bar);
      const tr = el("tr", { class: "row", tabindex: "0", title: "Filter by this value" }, label,
        el("td", { class: "num", text: fmt.format(r.visitors) }),
        el("td", { class: "num", text: def.key === "goal" ? fmt.format(r.completions) : money(r.revenue) }));
      const pick = () => {
        for (const f of rowFilters(def, r)) {
          if (f.dim && !view.filters.some((g) => g.dim === f.dim && g.value === f.value)) view.filters.push(f);
        }
        writeView(view);
        refresh();
      };
      tr.addEventListener("click", pick);
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") pick(); });
      body.append(tr);
    }
    offset += rows.length;
    const total = res.pagination ? res.pagination.total : offset;
    more.hidden = offset >= total;
  };
  more.addEventListener("click", () => load().catch(showError));
  await Promise.all([load(), def.ep === "countries" && window.topojson ? renderMap(map, view, params) : null]);
}

// ---- the world map of the countries panel --------------------------------------------------

let world = null; // the countries' outlines as SVG path data, by ISO numeric code
async function worldPaths() {
  if (world) return world;
  const topo = await (await fetch("/dashboard/countries-110m.json")).json();
  const features = window.topojson.feature(topo, topo.objects.countries).features;
  // Equirectangular, latitudes 85°N to 60°S; a ring that crosses the antimeridian is broken
  // there rather than drawn across the map.
  const pt = ([lon, lat]) => (lon + 180).toFixed(1) + "," + (85 - lat).toFixed(1);
  const ring = (r) => r.map((p, i) => (i === 0 || Math.abs(p[0] - r[i - 1][0]) > 180 ? "M" : "L") + pt(p)).join("") + "Z";
  world = features.map((f) => {
    const g = f.geometry;
    const polys = !g ? [] : g.type === "Polygon" ? [g.coordinates] : g.coordinates;
    return { id: f.id, name: f.properties.name, d: polys.flat().map(ring).join("") };
  });
  return world;
}

// Countries shaded by visitors; a click filters by the country.
async function renderMap(box, view, params) {
  const [paths, res] = await Promise.all([worldPaths(), api("countries", { ...params, limit: 300 })]);
  const byNumeric = {};
  let top = 1;
  for (const r of res.data || []) {
    // The row's flag address ends in its alpha-2 code (`…/US.svg`).
    const code = (/\/([A-Z]{2})\.svg$/.exec(r.image || "") || [])[1];
    const numeric = code && window.TALLY_ISO_NUMERIC[code];
    if (numeric) byNumeric[numeric] = r;
    top = Math.max(top, r.visitors);
  }
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 360 145");
  svg.setAttribute("class", "map");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Visitors by country");
  for (const p of paths) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", p.d);
    const row = byNumeric[p.id];
    const title = document.createElementNS(ns, "title");
    if (row) {
      path.setAttribute("class", "has");
      path.setAttribute("fill-opacity", (0.2 + 0.8 * Math.sqrt(row.visitors / top)).toFixed(2));
      path.dataset.country = row.country;
      title.textContent = row.country + ": " + fmt.format(row.visitors) + " visitors";
      path.addEventListener("click", () => {
        if (!view.filters.some((f) => f.dim === "country" && f.value === row.country)) {
          view.filters.push({ dim: "country", value: row.country });
        }
        writeView(view);
        refresh();
      });
    } else {
      title.textContent = p.name;
    }
    path.append(title);
    svg.append(path);
  }
  box.replaceChildren(svg);
}

function renderFilters(view) {
  $("filters").replaceChildren(...view.filters.map((f, i) => el("span", { class: "chip" },
    el("span", { text: f.dim + " is " + f.value }),
    el("button", { type: "button", "aria-label": "Remove filter", text: "×", on: {
      click: () => { view.filters.splice(i, 1); writeView(view); refresh(); },
    } }))));
}

async function renderLive() {
  const [now, map] = await Promise.all([api("realtime"), api("realtime/map")]);
  $("live-count").textContent = fmt.format((now.data && now.data[0] && now.data[0].visitors) || 0);
  const data = map.data || {};
  const visitors = (data.visitors || []).slice(0, 4).map((v) =>
    [v.location && v.location.countryCode, v.currentUrl, v.referrer ? "from " + v.referrer : ""].filter(Boolean).join(" · "));
  const events = (data.recentEvents || []).slice(0, 4).map((e) =>
    [e.type === "pageview" ? e.path : (e.extraData && e.extraData.eventName) || e.type, e.countryCode].filter(Boolean).join(" · "));
  const payments = (data.recentPayments || []).slice(0, 3).map((p) =>
    ["payment " + money(Number(p.amount) || 0), p.name].filter(Boolean).join(" · "));
  $("live-list").replaceChildren(...[...visitors, ...events, ...payments].map((text) => el("li", { text })));
}

function showError(e) {
  if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
    signOut(e.message);
    return;
  }
  $("error").textContent = e.message || String(e);
}

// ---- the page -------------------------------------------------------------------------------

let generation = 0;

async function refresh() {
  const view = readView();
  const mine = ++generation;
  $("error").textContent = "";
  $("range").value = view.range;
  $("custom").hidden = view.range !== "custom";
  if (view.range === "custom") { $("from").value = view.from; $("to").value = view.to; }
  renderFilters(view);
  const r = ranges(view);
  const params = { ...r.current, timezone: zone, ...filterParams(view) };
  try {
    const [now, before, series] = await Promise.all([
      api("overview", params),
      r.previous ? api("overview", { ...params, ...r.previous }) : Promise.resolve(null),
      api("timeseries", { ...params, interval: r.interval, fields: "visitors,sessions,revenue", limit: 1000 }),
    ]);
    if (mine !== generation) return;
    renderKpis(now.data[0], before && before.data[0]);
    renderChart(view, series);
    await Promise.all(Object.keys(PANELS).map((p) => renderPanel(p, view, params)));
    document.body.dataset.ready = String(mine);
  } catch (e) {
    showError(e);
  }
}

let liveTimer = null;

async function start() {
  $("signin").hidden = true;
  $("dash").hidden = false;
  $("signout").hidden = false;
  try {
    const sites = await reachable();
    const view = readView();
    let site = view.site || sessionStorage.getItem(SITE) || "";
    if (!sites.some((w) => w.id === site)) site = sites.length ? sites[0].id : "";
    sessionStorage.setItem(SITE, site);
    const picker = $("site-picker");
    picker.replaceChildren(...sites.map((w) => el("option", { value: w.id, text: w.name && w.name !== w.domain ? w.name + " (" + w.domain + ")" : w.domain })));
    picker.value = site;
    picker.hidden = sites.length < 2;
    if (isToken() && view.site !== site) {
      view.site = site;
      history.replaceState(null, "", location.pathname + "?" + new URLSearchParams({ ...Object.fromEntries(new URLSearchParams(location.search)), site }));
    }
    const meta = (await api("metadata")).data[0];
    zone = meta.timezone || "UTC";
    $("site-name").textContent = meta.name || meta.domain || "";
    $("zone").textContent = zone;
    const symbols = { USD: "$", EUR: "€", GBP: "£", JPY: "¥" };
    currency = symbols[meta.currency] || (meta.currency ? meta.currency + " " : "");
  } catch (e) {
    showError(e);
    return;
  }
  await refresh();
  renderLive().catch(() => {});
  clearInterval(liveTimer);
  liveTimer = setInterval(() => renderLive().catch(() => {}), 30000);
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(SITE);
  $("dash").hidden = true;
  $("signout").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
}

function init() {
  takeFragment();
  $("range").addEventListener("change", () => {
    const view = readView();
    view.range = $("range").value;
    if (view.range === "custom") { view.from = view.from || addDays(today(), -29); view.to = view.to || today(); }
    writeView(view);
    refresh();
  });
  for (const id of ["from", "to"]) $(id).addEventListener("change", () => {
    const view = readView();
    view.from = $("from").value; view.to = $("to").value;
    writeView(view);
    refresh();
  });
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    start();
  });
  $("site-picker").addEventListener("change", () => {
    const view = readView();
    view.site = $("site-picker").value;
    view.filters = [];
    sessionStorage.setItem(SITE, view.site);
    writeView(view);
    start();
  });
  $("signout").addEventListener("click", () => signOut(""));
  window.addEventListener("popstate", refresh);
  if (credential()) start(); else signOut("");
}

init();
