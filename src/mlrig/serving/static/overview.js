// The overview page: reads /overview.json (which embeds /monitoring) and fills the page.
// No framework and no external asset: the server works offline.
"use strict";

function get(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? o : o[k]), obj);
}

function fmt(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    if (value !== 0 && Math.abs(value) < 0.001) return value.toExponential(3);
    return value.toFixed(4);
  }
  return String(value);
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fill(tbody, rows, render) {
  tbody.replaceChildren();
  for (const item of rows) {
    const tr = document.createElement("tr");
    render(tr, item);
    tbody.appendChild(tr);
  }
}

function renderMonitoring(m) {
  const verdict = document.querySelector('[data-field="monitoring.verdict"]');
  verdict.className = "verdict " + (m.verdict === "ok" ? "ok" : m.verdict ? "bad" : "");
  const summary = document.getElementById("monitoring-summary");
  const quality = document.getElementById("quality");
  const report = document.getElementById("report");
  const body = document.querySelector("#drift tbody");
  if (!m.verdict) {
    verdict.textContent = "no result yet";
    summary.textContent = m.message || "";
    quality.textContent = "";
    report.hidden = true;
    fill(body, [], () => {});
    return;
  }
  verdict.textContent = m.verdict;
  const latest = m.versions.length ? m.versions[m.versions.length - 1] : null;
  const w = m.window;
  summary.textContent = `computed ${m.computed_at} on ${w.rows} predictions` +
    (latest && latest.drift ? `; ${latest.drift.drifted} of ${latest.drift.columns.length} features drifted (version ${latest.version})` : "");
  summary.dataset.rows = w.rows;
  if (latest) {
    const q = latest.quality;
    quality.replaceChildren();
    const parts = [["live " + q.metric, q.live], ["offline " + q.metric, q.offline], ["labelled", q.labelled]];
    for (const [label, value] of parts) {
      const span = document.createElement("span");
      span.dataset.quality = label;
      span.textContent = fmt(value);
      quality.append(label + " ", span, "  ");
    }
    quality.append("— " + q.reason);
  }
  const columns = latest && latest.drift ? latest.drift.columns.concat(latest.prediction_drift ? [latest.prediction_drift] : []) : [];
  fill(body, columns, (tr, c) => {
    tr.dataset.column = c.column;
    cell(tr, c.column);
    cell(tr, c.test);
    cell(tr, fmt(c.score), "num score");
    cell(tr, fmt(c.threshold), "num");
    cell(tr, c.drifted ? "yes" : "no", c.drifted ? "drifted" : "");
  });
  report.hidden = false;
  report.href = m.report_url;
}

async function refresh() {
  try {
    const response = await fetch("/overview.json", { cache: "no-store" });
    if (!response.ok) throw new Error("overview.json answered " + response.status);
    const data = await response.json();
    for (const el of document.querySelectorAll("[data-field]")) {
      if (!el.dataset.field.startsWith("monitoring.")) el.textContent = fmt(get(data, el.dataset.field));
    }
    renderMonitoring(data.monitoring);
    fill(document.querySelector("#history tbody"), data.champion_history.slice().reverse(), (tr, h) => {
      cell(tr, h.at); cell(tr, "v" + h.version); cell(tr, h.previous ? "v" + h.previous : "—");
      cell(tr, h.action); cell(tr, h.by); cell(tr, h.reason);
    });
    document.getElementById("refreshed").textContent = new Date().toISOString();
    document.body.dataset.loaded = "true";
  } catch (err) {
    document.getElementById("refreshed").textContent = "failed: " + err.message;
  }
}

refresh();
setInterval(refresh, 5000);
