/// `GET /` on the admin listener: one self-contained page (HTML, CSS and a little JavaScript in
/// the binary; no CDN, no build step), like HAProxy's stats page or Traefik's dashboard. It
/// reads the admin JSON (`/health`, `/admin/upstreams`) and `/metrics` every two seconds and
/// shows pools and servers, databases and the write pool, traffic (requests per second by
/// status class, p50/p99 over the last interval, cache hit ratio, rate-limited requests),
/// Redis and the last reload. Rates come from the difference between two scrapes, as
/// Prometheus's `rate()` does. With `admin_token`, the browser asks for it (HTTP Basic, any
/// user name) and sends it with every refresh.
enum DashboardPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gateway dashboard</title>
<style>
  :root { --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --muted: #6e7781; --line: #d0d7de; }
  body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }
  header { background: #24292f; color: #fff; padding: 10px 20px; display: flex; gap: 24px; align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0; }
  header span { color: #d0d7de; }
  main { padding: 16px 20px; display: grid; gap: 16px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  .tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; }
  .tile { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
  .tile b { display: block; font-size: 22px; }
  .tile small { color: var(--muted); }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--muted); font-weight: 600; }
  .ok { color: var(--ok); font-weight: 600; }
  .bad { color: var(--bad); font-weight: 600; }
  .warn { color: var(--warn); font-weight: 600; }
  #error { color: var(--bad); }
</style>
</head>
<body>
<header>
  <h1>Gateway</h1>
  <span id="status">loading…</span>
  <span id="version"></span>
  <span id="uptime"></span>
  <span id="reload"></span>
  <span id="error"></span>
</header>
<main>
  <section>
    <h2>Traffic <small id="interval"></small></h2>
    <div class="tiles">
      <div class="tile"><small>requests/s</small><b id="rps">–</b></div>
      <div class="tile"><small>2xx/s</small><b id="rps-2xx">–</b></div>
      <div class="tile"><small>4xx/s</small><b id="rps-4xx">–</b></div>
      <div class="tile"><small>5xx/s</small><b id="rps-5xx">–</b></div>
      <div class="tile"><small>p50</small><b id="p50">–</b></div>
      <div class="tile"><small>p99</small><b id="p99">–</b></div>
      <div class="tile"><small>cache hit ratio</small><b id="hit-ratio">–</b></div>
      <div class="tile"><small>rate-limited/s</small><b id="limited">–</b></div>
      <div class="tile"><small>client connections</small><b id="connections">–</b></div>
      <div class="tile"><small>Redis</small><b id="redis">–</b></div>
    </div>
  </section>
  <section>
    <h2>Pools and servers</h2>
    <table id="servers">
      <thead><tr><th>pool</th><th>server</th><th>state</th><th>health</th><th>available</th><th>ejected</th>
        <th>in flight</th><th>connections (idle)</th><th>last check</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Databases <small id="write-pool"></small></h2>
    <table id="databases">
      <thead><tr><th>database</th><th>reachable</th><th>role</th><th>LSN</th><th>lag</th><th>freshness</th>
        <th>connections</th><th>last probe</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let previous = null;

/** Prometheus text → [{name, labels, value}]. */
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    if (!m) continue;
    const labels = {};
    for (const pair of (m[2] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}
const sum = (samples, name, filter = () => true) =>
  samples.filter((s) => s.name === name && filter(s.labels)).reduce((a, s) => a + s.value, 0);

/** The q quantile of a histogram's increase between two scrapes (linear within a bucket). */
function quantile(q, now, before, name) {
  const buckets = {};
  for (const s of now) if (s.name === name + "_bucket") buckets[s.labels.le] = (buckets[s.labels.le] || 0) + s.value;
  if (before) for (const s of before) if (s.name === name + "_bucket") buckets[s.labels.le] = (buckets[s.labels.le] || 0) - s.value;
  const bounds = Object.keys(buckets).map((le) => [le === "+Inf" ? Infinity : Number(le), buckets[le]]).sort((a, b) => a[0] - b[0]);
  const total = bounds.length ? bounds[bounds.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0, below = 0;
  for (const [bound, count] of bounds) {
    if (count >= rank) {
      if (bound === Infinity) return lower;
      return lower + (bound - lower) * ((rank - below) / Math.max(count - below, 1e-9));
    }
    lower = bound; below = count;
  }
  return lower;
}
const ms = (seconds) => seconds == null ? "–" : seconds < 1 ? (seconds * 1000).toFixed(1) + " ms" : seconds.toFixed(2) + " s";
const rate = (v) => v == null ? "–" : v < 10 ? v.toFixed(1) : Math.round(v).toString();
function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

async function get(path) {
  const response = await fetch(path, { cache: "no-store", credentials: "same-origin" });
  if (!response.ok) throw new Error(path + ": " + response.status);
  return path === "/metrics" ? response.text() : response.json();
}

async function refresh() {
  try {
    const [health, upstreams, metricsText] = await Promise.all([get("/health"), get("/admin/upstreams"), get("/metrics")]);
    const now = { at: performance.now(), samples: parseMetrics(metricsText) };
    $("error").textContent = "";
    $("status").textContent = health.status;
    $("status").className = health.status === "ok" ? "ok" : "warn";
    $("version").textContent = "version " + health.version + " · " + health.event_loops + " event loops";
    $("uptime").textContent = "up " + Math.round(health.uptime_seconds) + " s";
    const reload = health.last_reload;
    $("reload").textContent = reload
      ? "last reload: " + reload.result + " at " + new Date(reload.at * 1000).toLocaleTimeString() + (reload.error ? " — " + reload.error : "")
      : "no reload yet";
    $("connections").textContent = health.client_connections;

    const s = now.samples;
    const redisConnected = s.find((x) => x.name === "gateway_redis_connected");
    const circuit = s.find((x) => x.name === "gateway_redis_circuit_open");
    $("redis").textContent = !redisConnected ? "not used" : circuit && circuit.value ? "circuit open" : redisConnected.value ? "connected" : "down";
    $("redis").className = !redisConnected ? "" : redisConnected.value && !(circuit && circuit.value) ? "ok" : "bad";
    if (previous) {
      const seconds = (now.at - previous.at) / 1000;
      const delta = (name, filter) => Math.max(0, sum(s, name, filter) - sum(previous.samples, name, filter)) / seconds;
      $("interval").textContent = "(last " + seconds.toFixed(1) + " s)";
      $("rps").textContent = rate(delta("gateway_requests_total"));
      for (const code of ["2xx", "4xx", "5xx"]) $("rps-" + code).textContent = rate(delta("gateway_requests_total", (l) => l.code === code));
      $("p50").textContent = ms(quantile(0.5, s, previous.samples, "gateway_request_duration_seconds"));
      $("p99").textContent = ms(quantile(0.99, s, previous.samples, "gateway_request_duration_seconds"));
      $("limited").textContent = rate(delta("gateway_rate_limit_requests_total", (l) => l.result === "limited"));
    }
    const hits = sum(s, "gateway_cache_requests_total", (l) => l.result === "hit");
    const lookups = sum(s, "gateway_cache_requests_total");
    $("hit-ratio").textContent = lookups ? (100 * hits / lookups).toFixed(1) + " %" : "–";
    previous = now;

    const servers = $("servers").tBodies[0];
    servers.replaceChildren();
    for (const u of upstreams.upstreams) {
      const row = servers.insertRow();
      row.dataset.pool = u.pool;
      row.dataset.server = u.server;
      cell(row, u.pool);
      cell(row, u.server);
      cell(row, u.state, u.state === "ready" ? "ok" : "warn");
      cell(row, u.health, u.health === "down" ? "bad" : u.health === "up" ? "ok" : "");
      cell(row, u.available ? "yes" : "no", u.available ? "ok" : "bad");
      cell(row, u.ejected ? "ejected (" + u.ejections + ")" : "no", u.ejected ? "bad" : "");
      cell(row, u.requests_in_flight);
      cell(row, u.connections_open + " (" + u.connections_idle + ")");
      cell(row, u.last_check ? u.last_check.seconds_ago.toFixed(1) + " s ago" + (u.last_check.error ? " — " + u.last_check.error : "") : "–");
    }
    const databases = $("databases").tBodies[0];
    databases.replaceChildren();
    for (const d of upstreams.databases) {
      const row = databases.insertRow();
      row.dataset.database = d.name;
      cell(row, d.name);
      cell(row, d.reachable ? "yes" : "no", d.reachable ? "ok" : "bad");
      cell(row, d.role);
      cell(row, d.lsn || "–");
      cell(row, d.lag_bytes == null ? "–" : d.lag_bytes + " B" + (d.lag_seconds == null ? "" : ", " + d.lag_seconds.toFixed(1) + " s"));
      cell(row, d.freshness, d.freshness === "fresh" ? "ok" : d.freshness === "stale" ? "bad" : "");
      cell(row, d.connections == null ? "–" : d.connections + " / " + d.max_connections);
      cell(row, d.last_error ? d.last_error : d.last_probe_milliseconds == null ? "–" : d.last_probe_milliseconds.toFixed(1) + " ms");
    }
    $("write-pool").textContent = upstreams.write_pool
      ? "— writes go to pool " + upstreams.write_pool
      : "— no pool takes writes" + (upstreams.write_problem ? ": " + upstreams.write_problem : "");
    $("write-pool").className = upstreams.write_pool ? "ok" : "bad";
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (error) {
    $("error").textContent = "refresh failed: " + error.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""#
}
