// The region's dashboard: polls /dashboard/data and draws it, charts as hand-written SVG.
// Drawn elements carry the numbers they show as data attributes (data-metal, data-value), so
// what is on screen can be checked against the tallies.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const SYMBOL = { cobalt: "Co", lithium: "Li", nickel: "Ni", lead: "Pb", copper: "Cu" };
const POLL_MS = 2000;

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function html(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function pct(share) {
  return share === null || share === undefined ? "–" : (100 * Number(share)).toFixed(1) + " %";
}

// Bars of a share per metal (0-100 %), with two limit lines each: the nearer and the later one.
function barChart(target, chart, metals, limits) {
  const names = Object.keys(metals);
  target.replaceChildren();
  if (!names.length) {
    target.append(html("p", { class: "empty", "data-empty": "true" }, "no tallies published yet"));
    return;
  }
  const W = 520, H = 230, left = 40, bottom = 40, top = 14;
  const plot = H - bottom - top, slot = (W - left - 10) / names.length;
  const y = (share) => top + plot * (1 - Math.min(1, Math.max(0, Number(share))));
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": chart });
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(el("line", { x1: left, x2: W - 10, y1: y(tick), y2: y(tick), stroke: "#e6ebf0" }));
    svg.append(el("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end", "font-size": 10,
      fill: "#6b7785" }, `${tick * 100}%`));
  }
  names.forEach((metal, i) => {
    const m = metals[metal];
    const x = left + i * slot, w = Math.min(70, slot * 0.5), bx = x + (slot - w) / 2;
    const meets = m["meets_" + limits[0].slice(-4)];
    const g = el("g", { class: "metal", "data-metal": metal });
    g.append(el("rect", {
      class: "bar", x: bx, y: y(m.share), width: w, height: Math.max(0, y(0) - y(m.share)),
      rx: 3, fill: meets ? "var(--ok)" : "var(--short)",
      "data-chart": chart, "data-metal": metal, "data-value": m.share, "data-meets": String(meets),
    }));
    limits.forEach((limit, k) => {
      g.append(el("line", {
        class: "limit", x1: bx - 8, x2: bx + w + 8, y1: y(m[limit]), y2: y(m[limit]),
        stroke: k ? "var(--min-b)" : "var(--min-a)", "stroke-width": 2,
        "stroke-dasharray": k ? "2 3" : "6 3",
        "data-metal": metal, "data-limit": limit, "data-value": m[limit],
      }));
    });
    g.append(el("text", { x: bx + w / 2, y: y(m.share) - 5, "text-anchor": "middle",
      "font-size": 12, "font-weight": 600, class: "value" }, pct(m.share)));
    g.append(el("text", { x: x + slot / 2, y: H - bottom + 16, "text-anchor": "middle",
      "font-size": 13, "font-weight": 600 }, SYMBOL[metal] || metal));
    g.append(el("text", { x: x + slot / 2, y: H - bottom + 30, "text-anchor": "middle",
      "font-size": 10, fill: "#6b7785" },
      limits.map((l) => pct(m[l]).replace(" ", "")).join(" / ")));
    svg.append(g);
  });
  target.append(svg);
}

function table(headers, rows, numeric) {
  const t = html("table");
  const head = html("tr");
  headers.forEach((h, i) => head.append(html("th", numeric.includes(i) ? { class: "num" } : {}, h)));
  t.append(head);
  for (const row of rows) {
    const tr = html("tr");
    row.forEach((cell, i) => tr.append(html("td", numeric.includes(i) ? { class: "num" } : {},
      String(cell))));
    t.append(tr);
  }
  return t;
}

function drawAlerts(data) {
  const target = document.getElementById("alerts");
  target.replaceChildren();
  const kinds = Object.entries(data.open_alerts);
  if (!kinds.length) {
    target.append(html("p", { class: "empty" }, "no open alerts"));
    return;
  }
  const t = table(["kind", "open"], kinds, [1]);
  t.querySelectorAll("tr").forEach((tr, i) => {
    if (i) tr.setAttribute("data-alert-kind", kinds[i - 1][0]);
  });
  target.append(t);
  const list = html("ul", { class: "recent" });
  for (const a of data.recent_alerts.slice(0, 6)) {
    const li = html("li");
    li.append(html("span", { class: "pill" }, a.kind), document.createTextNode(" " + a.message));
    list.append(li);
  }
  target.append(list);
}

function drawFlows(data) {
  const target = document.getElementById("flows");
  target.replaceChildren();
  const directions = Object.entries(data.flows);
  if (!directions.length) {
    target.append(html("p", { class: "empty" }, "nothing mirrored into this region yet"));
    return;
  }
  for (const [direction, f] of directions) {
    const box = html("div", { class: "flow", "data-direction": direction });
    box.append(html("p", { class: "direction" }, direction));
    for (const [label, value, key] of [["shared", f.total.shared, "shared"],
      ["filtered", f.total.filtered_total, "filtered"],
      ["field values redacted", f.total.redacted, "redacted"]]) {
      const s = html("span", { class: "stat", "data-flow": key, "data-value": value });
      s.append(html("b", {}, String(value)), document.createTextNode(label));
      box.append(s);
    }
    const reasons = Object.entries(f.total.filtered);
    if (reasons.length) box.append(table(["filtered because", "records"], reasons, [1]));
    const types = Object.entries(f.by_event_type).map(([t, v]) => [t, v.shared,
      v.filtered_total, v.redacted]);
    box.append(table(["event type", "shared", "filtered", "redacted"], types, [1, 2, 3]));
    target.append(box);
  }
}

function drawLoops(data) {
  const target = document.getElementById("loops");
  target.replaceChildren();
  const rows = [];
  for (const [direction, metals] of Object.entries(data.loops.recovered_crossing)) {
    for (const [metal, kg] of Object.entries(metals)) {
      rows.push(["recovered metal crossing " + direction, metal, Number(kg).toFixed(3)]);
    }
  }
  for (const [side, metals] of Object.entries(data.loops.refined_from_partner_recycling)) {
    for (const [metal, kg] of Object.entries(metals)) {
      rows.push(["refined in " + side + " from the partner's recycling", metal,
        Number(kg).toFixed(3)]);
    }
  }
  if (!rows.length) {
    target.append(html("p", { class: "empty" }, "no recovered metal has crossed the border yet"));
    return;
  }
  target.append(table(["loop", "metal", "kg"], rows, [2]));
}

function draw(data) {
  document.getElementById("region").textContent = data.region;
  document.title = `batteryloop ${data.region} dashboard`;
  barChart(document.getElementById("recycled"), "recycled", data.recycled_content,
    ["minimum_2031", "minimum_2036"]);
  barChart(document.getElementById("recovery"), "recovery", data.recovery,
    ["target_2027", "target_2031"]);
  drawAlerts(data);
  drawFlows(data);
  drawLoops(data);
  const status = document.getElementById("status");
  const at = data.updated_ms ? new Date(data.updated_ms).toISOString().slice(0, 19) + "Z" : "–";
  status.textContent = `${data.records_read} records read; latest ${at}; ` +
    `${data.recycled_content_tallies} recycled-content and ${data.recovery_tallies} recovery tallies`;
  status.dataset.state = "live";
}

async function poll() {
  try {
    const response = await fetch("/dashboard/data", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    draw(await response.json());
  } catch (error) {
    const status = document.getElementById("status");
    status.textContent = `cannot read the dashboard data: ${error.message}; retrying`;
    status.dataset.state = "error";
  }
  setTimeout(poll, POLL_MS);
}

document.getElementById("lookup").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = document.getElementById("battery").value.trim();
  if (id) window.location.href = "/passport/" + encodeURIComponent(id);
});

poll();
