// citybrain dashboard: a small single-page app over the platform API. No build step.
// Tokens live in sessionStorage (gone when the tab closes); every call sends the access
// token and refreshes it once on 401.
"use strict";

const state = { tenant: null, me: null };
const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

async function refresh() {
  const refreshToken = sessionStorage.getItem("refresh");
  if (!refreshToken) return false;
  const r = await fetch("/auth/refresh", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ refresh_token: refreshToken }) });
  if (!r.ok) return false;
  const t = await r.json();
  sessionStorage.setItem("access", t.access_token);
  sessionStorage.setItem("refresh", t.refresh_token);
  return true;
}

async function api(path, options = {}, retried = false) {
  const headers = Object.assign({ authorization: "Bearer " + sessionStorage.getItem("access") }, options.headers || {});
  if (options.body && !headers["content-type"]) headers["content-type"] = "application/json";
  const r = await fetch(path, Object.assign({}, options, { headers }));
  if (r.status === 401 && !retried && (await refresh())) return api(path, options, true);
  if (r.status === 401) { logout(); throw new Error("session expired"); }
  const text = await r.text();
  const body = text && (r.headers.get("content-type") || "").includes("json") ? JSON.parse(text) : text;
  if (!r.ok) throw new Error((body && body.detail) || r.statusText);
  return body;
}

function logout() {
  const refreshToken = sessionStorage.getItem("refresh");
  if (refreshToken) fetch("/auth/logout", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ refresh_token: refreshToken }) });
  sessionStorage.clear();
  showLogin();
}

function showLogin() {
  $("#nav").hidden = true;
  $("#who").textContent = "";
  $("#view").innerHTML = "";
  $("#login-view").hidden = false;
}

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const r = await fetch("/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: form.get("username"), password: form.get("password") }) });
  const body = await r.json();
  if (!r.ok) { $("#login-error").textContent = body.detail || "login failed"; return; }
  sessionStorage.setItem("access", body.access_token);
  sessionStorage.setItem("refresh", body.refresh_token);
  event.target.reset();
  $("#login-error").textContent = "";
  start();
});

async function start() {
  if (!sessionStorage.getItem("access")) return showLogin();
  try { state.me = await api("/api/v1/me"); } catch (e) { return showLogin(); }
  state.tenant = state.tenant || state.me.default_tenant;
  $("#login-view").hidden = true;
  $("#nav").hidden = false;
  const tenants = Object.keys(state.me.tenants);
  $("#who").innerHTML = `${esc(state.me.name)} · tenant <select id="tenant">${tenants.map((t) => `<option ${t === state.tenant ? "selected" : ""}>${esc(t)}</option>`).join("")}</select> <button class="secondary" id="logout">Log out</button>`;
  $("#tenant").addEventListener("change", (e) => { state.tenant = e.target.value; route(); });
  $("#logout").addEventListener("click", logout);
  route();
}

const views = {
  async overview() {
    const health = await (await fetch("/health")).json();
    const grant = state.me.tenants[state.tenant] || { role: state.me.superuser ? "platform admin" : "-", permissions: [] };
    return `<h2>Overview</h2><div class="cards">
      <div class="card"><div class="label">Status</div><div class="value ok">${esc(health.status)}</div></div>
      <div class="card"><div class="label">Version</div><div class="value">${esc(health.version)}</div></div>
      <div class="card"><div class="label">Uptime</div><div class="value">${Math.floor(health.uptime_secs / 60)} min</div></div>
      <div class="card"><div class="label">Your role in ${esc(state.tenant)}</div><div class="value">${esc(grant.role)}</div></div>
    </div><h3>Your permissions</h3><p>${grant.permissions.map(esc).join(", ") || "none"}</p>
    <p>API description: <a class="link" href="/openapi.json">/openapi.json</a></p>`;
  },
  async members() {
    const members = await api(`/api/v1/tenants/${state.tenant}/members`);
    return `<h2>Members of ${esc(state.tenant)}</h2><table><tr><th>User</th><th>Role</th><th>Platform admin</th><th>Disabled</th></tr>
      ${members.map((m) => `<tr><td>${esc(m.username)}</td><td>${esc(m.role)}</td><td>${m.superuser ? "yes" : ""}</td><td>${m.disabled ? "yes" : ""}</td></tr>`).join("")}</table>`;
  },
  async keys() {
    const keys = await api(`/api/v1/tenants/${state.tenant}/api-keys`);
    setTimeout(() => {
      $("#new-key").addEventListener("submit", async (event) => {
        event.preventDefault();
        const form = new FormData(event.target);
        try {
          const created = await api(`/api/v1/tenants/${state.tenant}/api-keys`, { method: "POST", body: JSON.stringify({ name: form.get("name"), role: form.get("role") }) });
          $("#created").innerHTML = `<p>Copy the key now; it is not shown again:</p><div class="key">${esc(created.key)}</div>`;
        } catch (e) { $("#created").innerHTML = `<p class="error">${esc(e.message)}</p>`; }
      });
      document.querySelectorAll("button[data-revoke]").forEach((b) => b.addEventListener("click", async () => {
        await api(`/api/v1/tenants/${state.tenant}/api-keys/${b.dataset.revoke}`, { method: "DELETE" });
        route();
      }));
    });
    return `<h2>API keys of ${esc(state.tenant)}</h2>
      <form id="new-key"><input name="name" placeholder="name, e.g. loop detector 7" required>
        <select name="role">${["device", "viewer", "analyst", "operator", "admin"].map((r) => `<option>${r}</option>`).join("")}</select>
        <button type="submit">Create key</button></form><div id="created"></div><br>
      <table><tr><th>Id</th><th>Name</th><th>Role</th><th>Created by</th><th>State</th><th></th></tr>
      ${keys.map((k) => `<tr><td>${esc(k.id)}</td><td>${esc(k.name)}</td><td>${esc(k.role)}</td><td>${esc(k.created_by)}</td>
        <td class="${k.revoked_at ? "bad" : "ok"}">${k.revoked_at ? "revoked" : "active"}</td>
        <td>${k.revoked_at ? "" : `<button class="secondary" data-revoke="${esc(k.id)}">Revoke</button>`}</td></tr>`).join("")}</table>`;
  },
  async audit() {
    const entries = await api(`/api/v1/tenants/${state.tenant}/audit?limit=200`);
    return `<h2>Audit log of ${esc(state.tenant)}</h2><table><tr><th>#</th><th>When</th><th>Actor</th><th>Action</th><th>Outcome</th><th>Target</th></tr>
      ${entries.map((e) => `<tr><td>${e.seq}</td><td>${new Date(e.at).toLocaleString()}</td><td>${esc(e.actor)}</td><td>${esc(e.action)}</td>
        <td class="${e.outcome === "success" ? "ok" : "bad"}">${esc(e.outcome)}</td><td>${esc(e.target)}</td></tr>`).join("")}</table>`;
  },
  async metrics() {
    const text = await api("/metrics");
    const rows = [];
    for (const line of text.split("\n")) {
      const m = line.match(/^citybrain_http_requests_total\{(.*)\} (\d+)/);
      if (!m) continue;
      const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
      rows.push({ ...labels, count: Number(m[2]) });
    }
    rows.sort((a, b) => b.count - a.count);
    const max = Math.max(1, ...rows.map((r) => r.count));
    // Bar widths are set through the DOM after rendering: the page's CSP forbids inline style attributes.
    setTimeout(() => document.querySelectorAll(".bar[data-share]").forEach((bar) => { bar.style.width = bar.dataset.share + "%"; }));
    return `<h2>HTTP requests since start</h2><table><tr><th>Method</th><th>Route</th><th>Status</th><th>Count</th><th class="wide"></th></tr>
      ${rows.map((r) => `<tr><td>${esc(r.method)}</td><td>${esc(r.route)}</td><td>${esc(r.status)}</td><td>${r.count}</td><td><div class="bar" data-share="${((100 * r.count) / max).toFixed(1)}"></div></td></tr>`).join("")}</table>`;
  },
};

async function route() {
  const name = (location.hash || "#overview").slice(1);
  const view = views[name] || views.overview;
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === "#" + name));
  try { $("#view").innerHTML = await view(); } catch (e) { $("#view").innerHTML = `<p class="error">${esc(e.message)}</p>`; }
}

window.addEventListener("hashchange", route);
start();
