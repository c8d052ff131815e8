/// The live dashboard served at `GET /dashboard` on the control plane: one HTML page with a little
/// JavaScript, no build step, no external resources. It polls the admin API every two seconds and
/// switches metadata options with the EC2 Query API's `ModifyInstanceMetadataOptions` (same listener).
///
/// Every value from the server (command lines, paths, ids) is inserted with `textContent`, never as
/// HTML, since callers choose their own command lines and paths.
public enum Dashboard {
    public static let html = #"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>imds dashboard</title>
        <style>
          :root { --fg:#1d2330; --muted:#5b6474; --bg:#f4f6fa; --card:#fff; --v1:#d9480f; --v2:#2b8a3e; --rej:#862e9c; --line:#dde2ea; }
          * { box-sizing: border-box; }
          body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
          header { background:#232f3e; color:#fff; padding:12px 24px; display:flex; align-items:baseline; gap:16px; }
          header h1 { font-size:18px; margin:0; }
          header .status { color:#c9d1dc; font-size:12px; }
          main { padding:16px 24px; display:grid; gap:16px; grid-template-columns: 1fr 1fr; }
          section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
          section.wide { grid-column: 1 / -1; }
          h2 { font-size:15px; margin:0 0 8px; }
          table { border-collapse:collapse; width:100%; }
          th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
          th { color:var(--muted); font-weight:600; font-size:12px; }
          td.num { text-align:right; font-variant-numeric: tabular-nums; }
          code { font:12px ui-monospace, SFMono-Regular, Menlo, monospace; word-break:break-all; }
          .badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; }
          .required, .ok { background:#d3f9d8; color:var(--v2); }
          .optional, .warn { background:#ffe8cc; color:var(--v1); }
          .disabled { background:#e9ecef; color:#495057; }
          .enabled { background:#d0ebff; color:#1864ab; }
          button { font:inherit; font-size:12px; padding:3px 10px; border-radius:6px; border:1px solid #adb5bd; background:#f8f9fa; cursor:pointer; margin:2px 4px 2px 0; }
          button:hover { background:#e9ecef; }
          .rates { display:flex; gap:24px; margin-bottom:8px; }
          .rate b { font-size:22px; display:block; }
          .rate.v1 b { color:var(--v1); } .rate.v2 b { color:var(--v2); } .rate.rej b { color:var(--rej); }
          .muted { color:var(--muted); }
          .verdict { font-weight:600; padding:6px 10px; border-radius:6px; margin-bottom:8px; }
          #error, #store.down { color:#ff8787; font-weight:600; }
        </style>
        </head>
        <body data-loaded="0">
        <header><h1>imds dashboard</h1><span class="status" id="status">loading…</span><span class="status" id="store"></span><span id="error"></span></header>
        <main>
          <section class="wide">
            <h2>Instances and metadata options</h2>
            <table id="instances"><thead><tr><th>Instance</th><th>HttpTokens</th><th>HttpEndpoint</th><th>Hop limit</th><th>IPv6</th><th>Tags in IMDS</th><th class="num">IMDSv1 callers</th><th class="num">Active events</th><th>Switch</th></tr></thead><tbody></tbody></table>
            <div class="muted" id="instances-more"></div>
          </section>
          <section>
            <h2>Request rates (last 60 s)</h2>
            <div class="rates">
              <div class="rate v1"><b id="rate-v1">0</b>IMDSv1 /min</div>
              <div class="rate rej"><b id="rate-v1-rejected">0</b>IMDSv1 refused /min</div>
              <div class="rate v2"><b id="rate-v2">0</b>IMDSv2 /min</div>
            </div>
            <svg id="chart" width="100%" height="90" viewBox="0 0 480 90" preserveAspectRatio="none" role="img" aria-label="requests per second, last two minutes"></svg>
            <div class="muted">requests per second over the last two minutes: <span style="color:var(--v1)">v1</span>, <span style="color:var(--rej)">v1 refused</span>, <span style="color:var(--v2)">v2</span></div>
          </section>
          <section>
            <h2>Active events and faults</h2>
            <table id="events"><thead><tr><th>Kind</th><th>Id</th><th>What</th><th>Where</th></tr></thead><tbody></tbody></table>
          </section>
          <section class="wide">
            <h2>IMDSv1 callers (these break when HttpTokens is required)</h2>
            <div id="verdict" class="verdict"></div>
            <table id="v1-callers"><thead><tr><th>Caller</th><th>PID</th><th>User</th><th>Container</th><th>Address</th><th>Instance</th><th class="num">v1</th><th class="num">v1 refused</th><th class="num">v2</th><th>Last seen</th><th>Paths</th></tr></thead><tbody></tbody></table>
          </section>
          <section class="wide">
            <h2>All callers</h2>
            <table id="callers"><thead><tr><th>Caller</th><th>PID</th><th class="num">v1</th><th class="num">v2</th><th>First seen</th><th>Last seen</th></tr></thead><tbody></tbody></table>
          </section>
        </main>
        <script>
        "use strict";
        const api = "/admin/v1";
        function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = String(text); if (cls) e.className = cls; return e; }
        function row(cells) { const tr = document.createElement("tr"); for (const c of cells) { const td = (c instanceof Node && c.tagName === "TD") ? c : el("td"); if (!(c instanceof Node && c.tagName === "TD")) { if (c instanceof Node) td.appendChild(c); else td.textContent = c === undefined || c === null ? "" : String(c); } tr.appendChild(td); } return tr; }
        function num(v) { const td = el("td", v, "num"); return td; }
        function fill(id, rows, empty, span) { const body = document.querySelector("#" + id + " tbody"); body.replaceChildren(); if (rows.length === 0) { const td = el("td", empty, "muted"); td.colSpan = span; const tr = document.createElement("tr"); tr.appendChild(td); body.appendChild(tr); } else { for (const r of rows) body.appendChild(r); } }
        async function getJSON(path) { const r = await fetch(path, { cache: "no-store" }); if (!r.ok) throw new Error(path + ": HTTP " + r.status); return r.json(); }
        // Through the EC2 Query API on this listener, as `aws ec2 modify-instance-metadata-options` does
        // (so the change is persisted and DescribeInstances agrees).
        const ec2Names = { "http-tokens": "HttpTokens", "http-endpoint": "HttpEndpoint" };
        async function setOption(instance, field, value) {
          document.getElementById("error").textContent = "";
          const body = new URLSearchParams({ Action: "ModifyInstanceMetadataOptions", Version: "2016-11-15", InstanceId: instance });
          body.set(ec2Names[field], value);
          try {
            const r = await fetch("/", { method: "POST", body: body });
            if (!r.ok) {
              const doc = new DOMParser().parseFromString(await r.text(), "text/xml");
              const m = doc.querySelector("Message");
              document.getElementById("error").textContent = "could not set " + field + ": " + (m ? m.textContent : "HTTP " + r.status);
            }
          } catch (e) { document.getElementById("error").textContent = "could not set " + field + ": " + e.message; }
          await refresh();
        }
        function badge(v) { return el("span", v, "badge " + v); }
        function button(id, label, instance, field, value) { const b = el("button", label); b.id = id; b.addEventListener("click", () => setOption(instance, field, value)); return b; }
        // The fleet table: every instance's options, its IMDSv1 callers and active events; in a large
        // fleet the instances with IMDSv1 callers or events come first and the table stops at 200 rows.
        const maxInstanceRows = 200;
        function renderInstances(all, callers) {
          const v1 = {};
          for (const c of callers) if (c.v1 + c["v1-rejected"] > 0) for (const id of c["instance-ids"] || []) v1[id] = (v1[id] || 0) + 1;
          const active = i => (i.events || []).filter(e => e.active).length;
          const busy = i => (v1[i["instance-id"]] || 0) + active(i) > 0 ? 0 : 1;
          const instances = all.length <= maxInstanceRows ? all : all.slice().sort((a, b) => busy(a) - busy(b)).slice(0, maxInstanceRows);
          document.getElementById("instances-more").textContent = all.length > instances.length
            ? "… and " + (all.length - instances.length) + " more instances without IMDSv1 callers or events (imds options show --instance-id ID)" : "";
          fill("instances", instances.map(i => {
            const o = i["metadata-options"], id = i["instance-id"];
            const sw = el("span");
            sw.appendChild(o["http-tokens"] === "required" ? button("tokens-optional-" + id, "Allow IMDSv1 (optional)", id, "http-tokens", "optional") : button("tokens-required-" + id, "Require IMDSv2", id, "http-tokens", "required"));
            sw.appendChild(o["http-endpoint"] === "enabled" ? button("endpoint-disabled-" + id, "Disable endpoint", id, "http-endpoint", "disabled") : button("endpoint-enabled-" + id, "Enable endpoint", id, "http-endpoint", "enabled"));
            const tr = row([el("code", id), badge(o["http-tokens"]), badge(o["http-endpoint"]), o["http-put-response-hop-limit"], badge(o["http-protocol-ipv6"]), badge(o["instance-metadata-tags"]), num(v1[id] || 0), num(active(i)), sw]);
            tr.id = "instance-" + id; tr.dataset.httpTokens = o["http-tokens"]; tr.dataset.httpEndpoint = o["http-endpoint"];
            tr.dataset.v1Callers = String(v1[id] || 0); tr.dataset.activeEvents = String(active(i));
            return tr;
          }), "no instances", 9);
        }
        function renderEvents(instances, faults) {
          const rows = [];
          for (const i of instances) for (const e of i.events || []) if (e.active) rows.push(row(["event", el("code", e.id), e.type + (e.action ? " (" + e.action + ")" : "") + (e.state ? " " + e.state : ""), i["instance-id"]]));
          for (const f of faults) rows.push(row(["fault", el("code", f.id), f.type + (f.milliseconds ? " " + f.milliseconds + " ms" : "") + (f.status ? " " + f.status : "") + (f.probability < 1 ? " p=" + f.probability : ""), (f["instance-id"] || "all") + " " + f.path]));
          for (const i of instances) { const s = i["credential-scenario"]; if (s && s.scenario !== "normal") rows.push(row(["credentials", "", s.scenario, i["instance-id"]])); }
          fill("events", rows, "none active", 4);
        }
        function callerName(c) { if (c.process) { const p = c.process; return (p.cmdline && p.cmdline.length ? p.cmdline.join(" ") : (p.exe || "?")); } return (c.addresses || []).join(", ") + (c.attribution === "remote" ? " (remote)" : " (not attributed)"); }
        function renderCallers(doc) {
          const breaking = doc.callers.filter(c => c.v1 + c["v1-rejected"] > 0);
          const v = document.getElementById("verdict");
          if (doc.callers.length === 0) { v.textContent = "No requests yet."; v.className = "verdict"; }
          else if (breaking.length === 0) { v.textContent = "Safe to require IMDSv2: no caller uses IMDSv1."; v.className = "verdict ok"; }
          else { v.textContent = breaking.length + " caller" + (breaking.length === 1 ? "" : "s") + " still use" + (breaking.length === 1 ? "s" : "") + " IMDSv1: not safe to require IMDSv2."; v.className = "verdict warn"; }
          fill("v1-callers", breaking.map(c => {
            const p = c.process || {};
            const paths = el("code", c.paths.filter(x => x.v1 > 0).map(x => x.path).slice(0, 5).join("  "));
            const tr = row([el("code", callerName(c)), p.pid || "", p.user || (p.uid !== undefined ? p.uid : ""), p["container-id"] ? p["container-id"].slice(0, 12) : "", c.addresses.join(", "), el("code", (c["instance-ids"] || []).join(", ")), num(c.v1), num(c["v1-rejected"]), num(c.v2), c["last-seen"], paths]);
            tr.className = "v1-caller"; if (p.pid) tr.dataset.pid = p.pid;
            return tr;
          }), "none", 11);
          fill("callers", doc.callers.map(c => row([el("code", callerName(c)), (c.process || {}).pid || "", num(c.v1 + c["v1-rejected"]), num(c.v2), c["first-seen"], c["last-seen"]])), "none yet", 6);
        }
        function renderTraffic(t) {
          const last = t.series.slice(-60);
          const sum = k => last.reduce((a, b) => a + b[k], 0);
          document.getElementById("rate-v1").textContent = sum("v1");
          document.getElementById("rate-v1-rejected").textContent = sum("v1-rejected");
          document.getElementById("rate-v2").textContent = sum("v2");
          const svg = document.getElementById("chart"); svg.replaceChildren();
          const max = Math.max(1, ...t.series.map(b => b.v1 + b["v1-rejected"] + b.v2));
          const w = 480 / t.series.length;
          t.series.forEach((b, i) => {
            let y = 90;
            for (const [k, color] of [["v2", "#2b8a3e"], ["v1-rejected", "#862e9c"], ["v1", "#d9480f"]]) {
              const h = b[k] / max * 86; if (h <= 0) continue; y -= h;
              const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
              r.setAttribute("x", (i * w).toFixed(2)); r.setAttribute("y", y.toFixed(2)); r.setAttribute("width", Math.max(1, w - 0.5).toFixed(2)); r.setAttribute("height", h.toFixed(2)); r.setAttribute("fill", color);
              svg.appendChild(r);
            }
          });
          const base = document.createElementNS("http://www.w3.org/2000/svg", "line");
          base.setAttribute("x1", 0); base.setAttribute("x2", 480); base.setAttribute("y1", 89.5); base.setAttribute("y2", 89.5); base.setAttribute("stroke", "#adb5bd");
          svg.appendChild(base);
        }
        function renderStore(s) {
          const e = document.getElementById("store");
          e.className = "status" + (s.reachable ? "" : " down");
          e.dataset.reachable = s.reachable ? "1" : "0";
          e.textContent = s.reachable ? "store: " + (s.location || s.kind) + " at revision " + s["applied-revision"]
            : "store " + (s.location || s.kind) + " unreachable since " + s["unreachable-since"] + ": serving revision " + s["applied-revision"] + ", changes fail until it is back";
        }
        async function refresh() {
          getJSON(api + "/store").then(renderStore, () => {});
          try {
            const [inst, faults, callers, traffic] = await Promise.all([getJSON(api + "/instances"), getJSON(api + "/faults"), getJSON(api + "/callers"), getJSON(api + "/traffic")]);
            renderInstances(inst.instances, callers.callers); renderEvents(inst.instances, faults.faults); renderCallers(callers); renderTraffic(traffic);
            document.getElementById("status").textContent = "updated " + new Date().toLocaleTimeString();
            document.body.dataset.loaded = "1";
          } catch (e) {
            document.getElementById("status").textContent = "cannot reach the control plane: " + e.message;
          }
        }
        refresh();
        setInterval(refresh, 2000);
        </script>
        </body>
        </html>
        """#
}
