// The console's views, chosen by the URL's fragment: #/ (the store), #/flows/{id}, #/objects/{id}, #/jobs.
// Everything shown comes from the server's API with the caller's credentials; what the store holds is only ever put
// in the page as text (never as HTML).
import { ApiError, getJson, page, request, setToken, token, withQuery } from "./api.js";
import { Player, playable } from "./player.js";
import { duration, parseTimerange, setLeapSeconds, utcText } from "./time.js";
import { Timeline } from "./timeline.js";

const main = document.getElementById("main");
const LIVE_POLL_MS = 2000;
const PAGE = 50;
let identity = null;
let stopView = () => {};

// an element: h("a", {href: "#/"}, "text", child, ...); attributes named on* are listeners
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function panel(title, ...children) {
  const id = `h-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section", { class: "panel", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

function facts(entries) {
  return h("dl", { class: "facts" }, entries.filter(([, v]) => v !== undefined && v !== null && v !== "").map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function errorText(e) {
  return e instanceof ApiError ? `${e.status}: ${e.summary}` : String(e?.message ?? e);
}

function failure(e) {
  return h("p", { class: "error", role: "alert" }, errorText(e));
}

function tags(doc) {
  const entries = Object.entries(doc.tags ?? {});
  if (!entries.length) return null;
  return h("span", { class: "tags" }, entries.map(([k, v]) => h("span", {}, `${k}: ${Array.isArray(v) ? v.join(", ") : v}`)));
}

function when(text) {
  return text ? String(text).replace(" ", "T").replace(/(\.\d{3})\d*/, "$1") : "";
}

// -- who is calling ---------------------------------------------------------------------------------------------
async function signIn() {
  identity = null; // until the server says who is calling, no view is drawn (the hash change handler checks)
  let found;
  try {
    found = await getJson("/console/identity");
    // basic auth: asking to be challenged has the browser ask for a user name and password, and keep them
    if (!found.signed_in && found.auth === "basic") found = await getJson("/console/identity?ask=true");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return showSignIn(e.summary);
    main.replaceChildren(failure(e));
    return false;
  }
  if (!found.signed_in) return showSignIn("This server needs a bearer token or JWT.");
  identity = found;
  setLeapSeconds(identity.leap_seconds);
  const scopes = identity.scopes === null ? "every scope" : identity.scopes.join(", ") || "no scope";
  document.getElementById("who").textContent =
    identity.auth === "none" ? "No authentication" : `${identity.name ?? "signed in"} (${scopes})`;
  document.getElementById("sign-out").hidden = !token();
  return true;
}

function showSignIn(why) {
  const form = document.getElementById("sign-in").content.cloneNode(true);
  form.querySelector(".why").textContent = token() ? `The server refused the token: ${why}` : why;
  form.querySelector("form").addEventListener("submit", (event) => {
    event.preventDefault();
    setToken(event.target.token.value.trim());
    start();
  });
  main.replaceChildren(form);
  main.querySelector("input").focus();
  return false;
}

document.getElementById("sign-out").addEventListener("click", () => {
  setToken(null);
  identity = null; // no view is drawn for the identity signed out (the hash change below routes nothing)
  stopView();
  stopView = () => {};
  location.hash = "#/";
  start();
});

// -- the store at a glance --------------------------------------------------------------------------------------
const FILTERS = [
  ["label", "Label"],
  ["format", "Format"],
  ["codec", "Codec"],
  ["tag_name", "Tag"],
  ["tag_value", "Tag value"],
];
const FORMATS = ["", "video", "audio", "data", "multi", "image"].map((f) => (f ? `urn:x-nmos:format:${f}` : ""));

function listQuery(params) {
  const query = { label: params.get("label"), format: params.get("format"), codec: params.get("codec"), source_id: params.get("source"), limit: PAGE };
  const tag = params.get("tag_name");
  if (tag) query[`tag.${tag}`] = params.get("tag_value") ?? "";
  if (tag && !params.get("tag_value")) {
    delete query[`tag.${tag}`];
    query[`tag_exists.${tag}`] = "true";
  }
  return query;
}

async function storeView(params) {
  const health = panel("Health", h("p", { class: "muted" }, "Asking /ready…"));
  const metrics = panel("Store metrics", h("p", { class: "muted" }, "Reading /metrics…"));
  const totals = panel("What the store holds", h("p", { class: "muted" }, "Counting…"));
  const form = h(
    "form",
    { class: "row", role: "search", "aria-label": "Filter flows and sources" },
    FILTERS.map(([name, text]) =>
      h(
        "div",
        {},
        h("label", { for: `f-${name}` }, text),
        name === "format"
          ? h("select", { id: `f-${name}`, name }, FORMATS.map((f) => h("option", { value: f, selected: params.get(name) === f }, f ? f.split(":").pop() : "any")))
          : h("input", { id: `f-${name}`, name, value: params.get(name) ?? "", size: name === "label" ? 24 : 12 }),
      ),
    ),
    h("button", { type: "submit", class: "primary" }, "Search"),
    h("button", { type: "reset" }, "Clear"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, String(v));
    location.hash = `#/?${q}`;
  });
  form.addEventListener("reset", () => setTimeout(() => (location.hash = "#/"), 0));
  const flows = h("div", {});
  const sources = h("div", {});
  main.replaceChildren(
    h("h1", {}, "The store"),
    h("div", { class: "grid" }, health, metrics, totals),
    h("div", { class: "panel" }, form),
    panel("Flows", flows),
    panel("Sources", sources),
  );
  const query = listQuery(params);
  // (the marks time the views for people and for bench --only console: performance.getEntriesByName)
  listing(flows, withQuery("/flows", query), flowRows, ["Label", "Format", "Codec", "Tags", "Segments updated"], () =>
    performance.mark("console:flows"),
  );
  const sourceQuery = { ...query };
  delete sourceQuery.codec;
  listing(sources, withQuery("/sources", sourceQuery), sourceRows, ["Label", "Format", "Tags", "Id"]);
  showHealth(health);
  showMetrics(metrics);
  showTotals(totals);
  const timer = setInterval(() => showHealth(health), 10_000);
  return () => clearInterval(timer);
}

// a paged table: the first page, then the next pages by the Link header's rel="next"; `shown` is told each time
async function listing(container, path, rows, heads, shown = () => {}) {
  const history = [];
  let current = path;
  const show = async () => {
    let found;
    try {
      found = await page(current);
    } catch (e) {
      container.replaceChildren(failure(e));
      return;
    }
    const table = h(
      "table",
      {},
      h("thead", {}, h("tr", {}, heads.map((t, i) => h("th", { scope: "col", class: i >= 3 ? "wide" : null }, t)))),
      h("tbody", {}, found.items.map(rows)),
    );
    const previous = h("button", { type: "button", disabled: history.length === 0, onclick: () => ((current = history.pop()), show()) }, "Previous page");
    const next = h("button", { type: "button", disabled: !found.next, onclick: () => (history.push(current), (current = found.next), show()) }, "Next page");
    const count = found.items.length ? `${found.items.length} shown` : "Nothing matches";
    container.replaceChildren(h("div", { class: "table-wrap" }, table), h("div", { class: "pager" }, previous, next, h("span", { class: "muted" }, count)));
    shown();
  };
  await show();
}

function flowRows(flow) {
  return h(
    "tr",
    { dataset: { flowId: flow.id } },
    h("td", {}, h("a", { href: `#/flows/${flow.id}` }, flow.label || flow.id)),
    h("td", {}, (flow.format ?? "").split(":").pop()),
    h("td", {}, (flow.codec ?? "").split(":").pop()),
    h("td", { class: "wide" }, tags(flow)),
    h("td", { class: "wide" }, when(flow.segments_updated)),
  );
}

function sourceRows(source) {
  const flowsOf = `#/?source=${source.id}`;
  return h(
    "tr",
    {},
    h("td", {}, source.label || source.id),
    h("td", {}, (source.format ?? "").split(":").pop()),
    h("td", { class: "wide" }, tags(source)),
    h("td", { class: "wide mono" }, h("a", { href: flowsOf, "aria-label": `Flows of ${source.label || source.id}` }, source.id)),
  );
}

async function showHealth(container) {
  let body;
  let ok = true;
  try {
    body = await getJson("/ready");
  } catch (e) {
    ok = false;
    body = { status: "not ready", writes: errorText(e), checks: {} };
  }
  const rows = Object.entries(body.checks ?? {}).map(([part, check]) =>
    h("tr", {}, h("td", {}, part), h("td", { class: check.state === "ok" ? "state-ok" : "state-bad" }, check.state), h("td", {}, check.summary ?? "")),
  );
  container.replaceChildren(
    h("h2", { id: "h-health" }, "Health"),
    h("p", {}, h("span", { class: ok ? "state-ok" : "state-bad", dataset: { ready: ok } }, ok ? "Ready" : "Not ready"), ` · writes: ${body.writes}`),
    rows.length ? h("div", { class: "table-wrap" }, h("table", { class: "health" }, h("tbody", {}, rows))) : null,
  );
}

// Prometheus text: {name: [{labels, value}]}
function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    (out[m[1]] ??= []).push({ labels, value: Number(m[3]) });
  }
  return out;
}

// a quantile of a histogram's buckets (cumulative counts by upper bound), or null without observations
function quantile(buckets, q) {
  const sorted = buckets.map((b) => [b.labels.le === "+Inf" ? Infinity : Number(b.labels.le), b.value]).sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (!total) return null;
  const rank = q * total;
  let [lastLe, lastCount] = [0, 0];
  for (const [le, count] of sorted) {
    if (count >= rank) {
      if (le === Infinity) return lastLe;
      return lastLe + ((le - lastLe) * (rank - lastCount)) / Math.max(1, count - lastCount);
    }
    [lastLe, lastCount] = [le, count];
  }
  return lastLe;
}

async function showMetrics(container) {
  let metrics;
  try {
    metrics = parseMetrics(await (await request("/metrics")).text());
  } catch (e) {
    container.replaceChildren(h("h2", { id: "h-store-metrics" }, "Store metrics"), failure(e));
    return;
  }
  const sum = (name, where = () => true) => (metrics[name] ?? []).filter((s) => where(s.labels)).reduce((a, s) => a + s.value, 0);
  const ms = (s) => (s === null ? "–" : `${(s * 1000).toFixed(1)} ms`);
  const postSegments = (l) => l.method === "POST" && (l.route ?? "").endsWith("/segments");
  const postBuckets = (metrics.tams_http_request_duration_seconds_bucket ?? []).filter((s) => postSegments(s.labels));
  const byLe = {};
  for (const b of postBuckets) byLe[b.labels.le] = (byLe[b.labels.le] ?? 0) + b.value;
  const merged = Object.entries(byLe).map(([le, value]) => ({ labels: { le }, value }));
  const checkpoints = sum("tams_store_checkpoint_seconds_count");
  const checkpointSum = sum("tams_store_checkpoint_seconds_sum");
  container.replaceChildren(
    h("h2", { id: "h-store-metrics" }, "Store metrics"),
    facts([
      ["Segment POSTs", String(sum("tams_http_request_duration_seconds_count", postSegments))],
      ["POST p50 / p99", `${ms(quantile(merged, 0.5))} / ${ms(quantile(merged, 0.99))}`],
      ["Checkpoints", checkpoints ? `${checkpoints}, ${ms(checkpointSum / checkpoints)} on average` : "none yet"],
      ["Write retries", `${sum("tams_write_retries")} (given up: ${sum("tams_write_retries_given_up")})`],
      ["Webhook queue", String(sum("tams_webhook_queue_depth"))],
      ["Deletions pending", String(sum("tams_object_deletions_pending"))],
    ]),
  );
}

async function showTotals(container) {
  try {
    const found = await getJson("/console/summary");
    const counts = Object.entries(found.counts).filter(([, v]) => v !== null);
    container.replaceChildren(
      h("h2", { id: "h-what-the-store-holds" }, "What the store holds"),
      h("div", { class: "counts" }, counts.map(([k, v]) => h("div", { dataset: { count: k } }, h("div", { class: "count" }, v.toLocaleString("en")), k))),
      h("h2", {}, "Newest activity"),
      found.newest.length
        ? h("ul", {}, found.newest.map((f) => h("li", {}, h("a", { href: `#/flows/${f.id}` }, f.label || f.id), ` ${when(f.segments_updated)}`)))
        : h("p", { class: "muted" }, "No segment yet"),
    );
  } catch (e) {
    container.replaceChildren(h("h2", {}, "What the store holds"), failure(e));
  }
}

// -- one flow ---------------------------------------------------------------------------------------------------
async function flowView(flowId) {
  let flow;
  try {
    flow = await getJson(`/flows/${flowId}?include_timerange=true`);
  } catch (e) {
    main.replaceChildren(h("h1", {}, "Flow"), failure(e));
    return () => {};
  }
  const live = h("p", { class: "live", dataset: { edge: "" } }, "Looking for the newest segment…");
  const timelineBox = h("div", {});
  const playerBox = h("div", {});
  const segments = h("div", {});
  const detail = h("div", {});
  const writes = writeControls(flow);
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← The store")),
    h("h1", {}, flow.label || flow.id),
    h("div", { class: "grid" }, panel("Flow", flowFacts(flow), writes), panel("Live edge", live)),
    panel("Coverage", timelineBox),
    panel("Play", playerBox),
    panel("Segments", segments),
    detail,
  );
  let player = null;
  let reason = "asking the server…";
  let stage = null;
  const pick = (ns, seconds = 30n) => {
    if (reason) return;
    stage ??= playerBox.appendChild(h("div", {}));
    player ??= new Player(stage, flow);
    player.play({ start: ns, end: ns + seconds * 1_000_000_000n }).catch((e) => stage.append(failure(e)));
  };
  // a multi flow has no segments of its own: its timeline is its first video member's
  const timed = await memberShown(flow);
  if (timed !== flow) timelineBox.before(h("p", { class: "muted" }, "The coverage of its video member ", h("a", { href: `#/flows/${timed.id}` }, timed.label || timed.id), ":"));
  const timeline = new Timeline(timelineBox, timed.id, { onPick: pick, onShown: () => performance.mark("console:timeline") });
  timeline.load(timed.timerange).catch((e) => timelineBox.append(failure(e)));
  playable(flow).then((why) => {
    reason = why;
    if (reason) playerBox.replaceChildren(h("p", { class: "muted" }, `This flow does not play here: ${reason}`));
    else playerBox.replaceChildren(playForm(timed, pick));
  });
  segmentTable(segments, timed, detail);
  let stopped = false;
  const poll = async () => {
    if (stopped) return;
    try {
      const newest = await getJson(withQuery(`/flows/${timed.id}/segments`, { reverse_order: "true", limit: 1 }));
      if (newest.length) {
        const r = parseTimerange(newest[0].timerange);
        live.dataset.edge = String(r.end);
        live.textContent = `${newest[0].timerange} · ends ${utcText(r.end, 3)}`;
        timeline.setEdge(r.end);
      } else live.textContent = "No segment yet";
    } catch (e) {
      live.textContent = errorText(e);
    }
  };
  await poll();
  const timer = setInterval(poll, LIVE_POLL_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
    player?.destroy();
  };
}

// the flow whose coverage a flow's page shows: itself, or a multi flow's first video member (with its timerange)
async function memberShown(flow) {
  if (!flow.format?.endsWith(":multi") || !flow.flow_collection?.length) return flow;
  for (const member of flow.flow_collection) {
    try {
      const doc = await getJson(`/flows/${member.id}?include_timerange=true`);
      if (doc.format?.endsWith(":video")) return doc;
    } catch {
      // a member this caller may not read, or gone: the next one
    }
  }
  return flow;
}

function flowFacts(flow) {
  const extent = parseTimerange(flow.timerange ?? "()");
  return facts([
    ["Id", h("span", { class: "mono" }, flow.id)],
    ["Description", flow.description],
    ["Format", flow.format],
    ["Codec", flow.codec],
    ["Container", flow.container],
    ["Source", h("span", { class: "mono" }, flow.source_id)],
    ["Timerange", flow.timerange],
    ["Time (UTC)", extent?.start != null && extent?.end != null ? `${utcText(extent.start, 3)} – ${utcText(extent.end, 3)} (${duration(extent.end - extent.start)})` : "no segment"],
    ["Tags", tags(flow)],
    ["Collection", (flow.flow_collection ?? []).length ? h("span", {}, flow.flow_collection.map((m) => h("a", { href: `#/flows/${m.id}`, class: "mono" }, `${m.role ?? ""} ${m.id}`.trim())).flatMap((a) => [a, " "])) : null],
    ["Read only", flow.read_only ? "yes" : null],
  ]);
}

// the write controls, for identities whose scopes allow them only: a read-only one gets none
function writeControls(flow) {
  if (!identity?.may.write) return null;
  const input = h("input", { id: "label-edit", name: "label", value: flow.label ?? "", size: 28, class: "write-control" });
  const status = h("span", { class: "muted", role: "status" });
  const form = h(
    "form",
    { class: "row", "aria-label": "Change the flow's label" },
    h("div", {}, h("label", { for: "label-edit" }, "Label"), input),
    h("button", { type: "submit", class: "write-control" }, "Save label"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await request(`/flows/${flow.id}/label`, { method: "PUT", body: JSON.stringify(input.value) });
      status.textContent = "Saved";
    } catch (e) {
      status.textContent = errorText(e);
    }
  });
  const remove = h("button", { type: "button", class: "danger write-control" }, "Delete this flow…");
  remove.addEventListener("click", async () => {
    if (!confirm(`Delete flow ${flow.label || flow.id} and all its segments?`)) return;
    try {
      await request(`/flows/${flow.id}`, { method: "DELETE" });
      location.hash = "#/jobs";
    } catch (e) {
      status.textContent = errorText(e);
    }
  });
  return h("div", {}, h("hr", {}), form, h("p", {}, remove));
}

function playForm(flow, pick) {
  const from = h("input", { id: "play-from", name: "from", size: 26, placeholder: "sec:nsec", "aria-describedby": "play-hint" });
  const seconds = h("input", { id: "play-for", name: "for", type: "number", min: 1, max: 3600, value: 30, size: 5 });
  const form = h(
    "form",
    { class: "row", "aria-label": "Play from a time" },
    h("div", {}, h("label", { for: "play-from" }, "Play from (TAMS time)"), from),
    h("div", {}, h("label", { for: "play-for" }, "for (seconds)"), seconds),
    h("button", { type: "submit", class: "primary" }, "Play"),
    h("span", { id: "play-hint", class: "muted" }, "or click the timeline"),
  );
  const extent = parseTimerange(flow.timerange ?? "()");
  if (extent?.start != null) from.value = `${extent.start / 1_000_000_000n}:${extent.start % 1_000_000_000n}`;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const r = parseTimerange(`[${from.value.trim()}]`);
    if (r) pick(r.start, BigInt(Math.max(1, Math.min(3600, Math.round(Number(seconds.value) || 30)))));
  });
  return form;
}

function segmentTable(container, flow, detail) {
  const rows = (segment) => {
    const r = parseTimerange(segment.timerange);
    return h(
      "tr",
      { dataset: { timerange: segment.timerange } },
      h("td", { class: "mono" }, segment.timerange),
      h("td", {}, r?.start != null ? utcText(r.start, 3) : ""),
      h("td", { class: "mono" }, h("a", { href: `#/flows/${flow.id}`, onclick: (e) => (e.preventDefault(), objectDetail(detail, segment.object_id)) }, segment.object_id)),
      h("td", { class: "wide" }, r?.end != null ? duration(r.end - r.start) : ""),
    );
  };
  listing(container, withQuery(`/flows/${flow.id}/segments`, { limit: PAGE }), rows, ["Timerange", "Start (UTC)", "Object", "Duration"]);
}

// -- an object --------------------------------------------------------------------------------------------------
async function objectDetail(container, objectId) {
  container.replaceChildren(panel(`Object ${objectId}`, h("p", { class: "muted" }, "Loading…")));
  try {
    const object = await getJson(`/objects/${encodeURIComponent(objectId)}?verbose_storage=true`);
    const urls = (object.get_urls ?? []).map((u) => h("li", {}, `${u.label ?? u.storage_id ?? "url"}${u.controlled === false ? " (uncontrolled)" : ""}: `, h("a", { href: u.url, class: "mono" }, "GET")));
    const flows = (object.referenced_by_flows ?? []).map((id) => h("li", {}, h("a", { href: `#/flows/${id}`, class: "mono" }, id)));
    container.replaceChildren(
      panel(
        `Object ${objectId}`,
        facts([
          ["Id", h("span", { class: "mono" }, object.id)],
          ["Size", object.size !== undefined ? `${object.size} bytes` : null],
          ["First referenced by", object.first_referenced_by_flow],
          ["Key frames", object.key_frame_count],
        ]),
        h("h2", {}, "Instances (get_urls)"),
        urls.length ? h("ul", {}, urls) : h("p", { class: "muted" }, "None"),
        h("h2", {}, "Referenced by flows"),
        flows.length ? h("ul", {}, flows) : h("p", { class: "muted" }, "None"),
      ),
    );
    container.scrollIntoView({ block: "nearest" });
  } catch (e) {
    container.replaceChildren(panel(`Object ${objectId}`, failure(e)));
  }
}

// -- integrity, webhooks and delete requests --------------------------------------------------------------------
async function jobsView() {
  const integrity = h("div", {});
  const hooks = h("div", {});
  const deletions = h("div", {});
  main.replaceChildren(
    h("h1", {}, "Integrity and jobs"),
    panel("Integrity", integrity),
    panel("Webhooks", hooks),
    panel("Flow delete requests", deletions),
  );
  listing(hooks, withQuery("/service/webhooks", { limit: PAGE }), (w) =>
    h("tr", {}, h("td", { class: "mono" }, w.url), h("td", { class: w.status === "error" ? "state-bad" : null }, w.status ?? ""), h("td", {}, (w.events ?? []).join(", ")), h("td", { class: "wide mono" }, w.id ?? "")),
  ["URL", "Status", "Events", "Id"]);
  let timer = null;
  if (identity?.may.admin) {
    listing(deletions, withQuery("/flow-delete-requests", { limit: PAGE }), (d) =>
      h("tr", {}, h("td", { class: "mono" }, d.flow_id), h("td", { class: d.status === "error" ? "state-bad" : null }, d.status), h("td", {}, d.timerange_remaining ?? ""), h("td", { class: "wide" }, d.error?.summary ?? "")),
    ["Flow", "Status", "Remaining", "Error"]);
    const refresh = async () => {
      const state = await showIntegrity(integrity, refresh).catch((e) => integrity.replaceChildren(failure(e)));
      clearTimeout(timer);
      if (state === "running") timer = setTimeout(refresh, 1000);
    };
    await refresh();
  } else {
    deletions.replaceChildren(h("p", { class: "muted" }, "Listing delete requests needs the admin scope."));
    integrity.replaceChildren(h("p", { class: "muted" }, "The integrity audit needs the admin scope."));
  }
  return () => clearTimeout(timer);
}

const SECONDS = (t) => (t ? new Date(t * 1000).toISOString().replace(/\.\d+Z$/, "Z") : "");

async function showIntegrity(container, refresh) {
  const latest = await getJson("/console/integrity");
  const run = h("button", { type: "button", class: "primary write-control", disabled: latest.state === "running" }, latest.state === "running" ? "Auditing…" : "Run the integrity audit");
  const storage = h("input", { type: "checkbox", id: "audit-storage", class: "write-control" });
  run.addEventListener("click", async () => {
    try {
      await request(withQuery("/console/integrity", { storage: storage.checked ? "true" : null }), { method: "POST" });
    } catch (e) {
      container.append(failure(e));
    }
    refresh();
  });
  const parts = [
    h(
      "p",
      { class: "row" },
      run,
      h("span", {}, storage, h("label", { for: "audit-storage", style: null, class: "inline" }, " and look at every object in object storage (long on an archive)")),
    ),
  ];
  if (latest.state === "never") parts.push(h("p", { class: "muted", dataset: { integrity: "never" } }, "No audit since the server started."));
  else if (latest.state === "running") parts.push(h("p", { dataset: { integrity: "running" } }, `Auditing since ${SECONDS(latest.started)}…`));
  else if (latest.state === "failed") parts.push(h("p", { class: "error", dataset: { integrity: "failed" } }, `The audit of ${SECONDS(latest.started)} failed: ${latest.error}`));
  else {
    const report = latest.report;
    const checked = Object.entries(report.checked).map(([k, v]) => `${v} ${k}`).join(", ");
    parts.push(
      h("p", { dataset: { integrity: report.verdict } }, h("span", { class: report.clean ? "state-ok" : "state-bad" }, report.verdict), ` · audited ${SECONDS(latest.finished)} · ${checked}`),
      Object.keys(report.skipped).length ? h("p", { class: "muted" }, `Skipped: ${Object.entries(report.skipped).map(([k, v]) => `${k} (${v})`).join("; ")}`) : null,
    );
    if (report.summary.length) {
      parts.push(
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            {},
            h("thead", {}, h("tr", {}, ["Check", "Flow", "Findings", "Timerange", "For example"].map((t) => h("th", { scope: "col" }, t)))),
            h(
              "tbody",
              {},
              report.summary.map((g) =>
                h(
                  "tr",
                  { dataset: { check: g.check, flowId: g.flow_id ?? "" } },
                  h("td", {}, g.check.replaceAll("_", " ")),
                  h("td", {}, g.flow_id ? h("a", { href: `#/flows/${g.flow_id}` }, g.flow_label || g.flow_id) : ""),
                  h("td", {}, g.count > g.findings ? `${g.findings} (${g.count} rows)` : String(g.findings)),
                  h("td", { class: "mono" }, g.timerange ?? ""),
                  h("td", {}, g.example.detail ?? ""),
                ),
              ),
            ),
          ),
        ),
      );
    }
  }
  container.replaceChildren(...parts);
  return latest.state;
}

// -- the router -------------------------------------------------------------------------------------------------
async function route() {
  stopView();
  stopView = () => {};
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query ?? "");
  let m;
  if ((m = /^\/flows\/([^/]+)$/.exec(path))) stopView = await flowView(decodeURIComponent(m[1]));
  else if ((m = /^\/objects\/(.+)$/.exec(path))) {
    main.replaceChildren(h("div", {}));
    await objectDetail(main.firstChild, decodeURIComponent(m[1]));
  } else if (path === "/jobs") stopView = await jobsView();
  else stopView = await storeView(params);
  document.title = `${main.querySelector("h1")?.textContent ?? "Console"} · TAMS console`;
}

async function start() {
  if (await signIn()) await route();
}

window.addEventListener("hashchange", () => identity && route().catch((e) => main.replaceChildren(failure(e))));
start().catch((e) => main.replaceChildren(failure(e)));
