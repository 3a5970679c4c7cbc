// smscd status page: fetches status.json every few seconds and draws it.
// No library: the charts are stacked bars in SVG built here. Text goes in
// with textContent only, and nothing is styled inline (the page's
// Content-Security-Policy allows this origin's files and nothing else).
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const WIDTH = 440;
  const HEIGHT = 150;
  const LEFT = 44;
  const BOTTOM = 18;
  const TOP = 8;
  const refreshMs = Number(document.body.dataset.refreshMs) || 2000;
  let lastGood = null;

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) {
      node.setAttribute(name, String(value));
    }
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function clock(date) {
    return pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function when(iso) {
    const date = new Date(iso);
    const today = new Date();
    if (date.toDateString() === today.toDateString()) return clock(date);
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      " " + clock(date);
  }

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + pad(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + pad(Math.floor((s % 3600) / 60)) + " min";
  }

  function number(n) {
    return Number(n).toLocaleString("en-US");
  }

  // An axis label: 1,500 -> "1.5k", 2,000,000 -> "2M".
  function compact(n) {
    const abs = Math.abs(n);
    if (abs >= 1e6) return Number((n / 1e6).toPrecision(3)) + "M";
    if (abs >= 1e4) return Number((n / 1e3).toPrecision(3)) + "k";
    return number(n);
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 5, 10]) {
      if (m * power >= value) return m * power;
    }
    return 10 * power;
  }

  function stepLabel(chart, i) {
    const start = chart.starts[i];
    if (chart.step === "day") return start.slice(8, 10) + "/" + start.slice(5, 7);
    const date = new Date(start);
    return pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  function sum(values) {
    return values.reduce((a, b) => a + b, 0);
  }

  function drawChart(chart) {
    const figure = element("figure", "chart");
    figure.dataset.chart = chart.key;
    const total = sum(chart.series.map((s) => sum(s.values)));
    const caption = element("figcaption");
    caption.append(element("span", "title", chart.title));
    const totalNode = element("span", "total", number(total) + " " + chart.unit);
    totalNode.dataset.total = String(total);
    caption.append(totalNode);
    figure.append(caption);

    const legend = element("ul", "legend");
    chart.series.forEach((series, j) => {
      const item = element("li", "s" + (j % 8));
      item.dataset.series = series.name;
      item.dataset.total = String(sum(series.values));
      item.append(element("span", "swatch"));
      item.append(element("span", "name", series.label));
      item.append(element("span", "count", number(sum(series.values))));
      legend.append(item);
    });
    figure.append(legend);

    const steps = chart.starts.length;
    const stacks = chart.starts.map((_, i) => sum(chart.series.map((s) => s.values[i])));
    const top = niceMax(Math.max(0, ...stacks));
    const plotW = WIDTH - LEFT;
    const plotH = HEIGHT - BOTTOM - TOP;
    const barW = plotW / steps;
    const y = (v) => TOP + plotH - (v / top) * plotH;
    const image = svg("svg", {
      viewBox: "0 0 " + WIDTH + " " + HEIGHT,
      role: "img",
      "aria-label": chart.title,
      class: "plot",
    });
    for (const fraction of [0, 0.5, 1]) {
      const v = top * fraction;
      image.append(svg("line", { x1: LEFT, x2: WIDTH, y1: y(v), y2: y(v), class: "grid" }));
      if (Number.isInteger(v)) {
        image.append(svg("text", { x: LEFT - 4, y: y(v) + 4, class: "axis end" }, compact(v)));
      }
    }
    for (let i = 0; i < steps; i++) {
      let base = 0;
      chart.series.forEach((series, j) => {
        const value = series.values[i];
        if (!value) return;
        const bar = svg("rect", {
          x: LEFT + i * barW + 0.5,
          y: y(base + value),
          width: Math.max(1, barW - 1),
          height: Math.max(1, y(base) - y(base + value)),
          class: "bar s" + (j % 8),
          "data-series": series.name,
          "data-step": chart.starts[i],
          "data-value": value,
        });
        bar.append(svg("title", {}, stepLabel(chart, i) + "  " + series.label + ": " + number(value)));
        image.append(bar);
        base += value;
      });
    }
    for (const i of [0, Math.floor(steps / 2), steps - 1]) {
      const anchor = i === 0 ? "start" : i === steps - 1 ? "end" : "middle";
      const x = i === steps - 1 ? WIDTH : LEFT + i * barW;
      image.append(svg("text", { x: x, y: HEIGHT - 4, class: "axis " + anchor }, stepLabel(chart, i)));
    }
    figure.append(image);
    return figure;
  }

  function cell(row, text, className) {
    const td = element("td", className, text);
    row.append(td);
    return td;
  }

  function drawBinds(binds, now) {
    const body = document.querySelector("#binds tbody");
    const rows = binds.map((bind) => {
      const row = element("tr");
      row.dataset.carrier = bind.carrier;
      cell(row, bind.carrier, "carrier");
      const state = cell(row, "");
      const badge = element("span", "badge " + bind.state, bind.state);
      badge.dataset.state = bind.state;
      state.append(badge);
      const since = (now - new Date(bind.since)) / 1000;
      cell(row, when(bind.since) + " (" + duration(since) + ")", "since");
      cell(row, bind.reconnects_today, "num");
      cell(row, bind.in_flight + " / " + bind.window, "num");
      cell(row, bind.submit_cap ? number(bind.submit_cap) + "/s" : "none", "num");
      const error = bind.last_error;
      cell(row, error ? error.event + " at " + when(error.at) + (error.detail ? " (" + error.detail + ")" : "") : "-");
      return row;
    });
    body.replaceChildren(...rows);
  }

  function drawQueues(queues, store) {
    document.getElementById("outbox-depth").textContent = number(queues.outbox_depth);
    document.getElementById("outbox-oldest").textContent =
      queues.outbox_oldest_s === null ? "nothing waiting" : "oldest " + duration(queues.outbox_oldest_s);
    document.getElementById("hashing-queue").textContent = number(queues.hashing_queue);
    document.getElementById("intake-backlog").textContent = number(queues.intake_backlog);
    const state = document.getElementById("store-state");
    state.textContent = store.ok ? "ok" : "not answering";
    state.className = "value " + (store.ok ? "good" : "bad");
    document.getElementById("store-error").textContent = store.ok ? "answering" : store.error;
  }

  function drawCharts(charts) {
    for (const step of ["minute", "day"]) {
      const box = document.getElementById("charts-" + step);
      box.replaceChildren(...charts.filter((c) => c.step === step).map(drawChart));
    }
  }

  function drawEvents(events) {
    const body = document.querySelector("#events tbody");
    if (!events.length) {
      const row = element("tr");
      const td = cell(row, "none since the daemon started", "muted");
      td.colSpan = 6;
      body.replaceChildren(row);
      return;
    }
    body.replaceChildren(...events.map((event) => {
      const row = element("tr", event.level);
      cell(row, when(event.at));
      cell(row, event.level);
      cell(row, event.event);
      cell(row, event.carrier || "-");
      cell(row, event.msisdn || "-");
      cell(row, event.detail || "");
      return row;
    }));
  }

  function draw(status) {
    const now = new Date();
    const verdict = document.getElementById("verdict");
    verdict.textContent = status.healthy ? "healthy" : "NOT HEALTHY";
    verdict.className = "badge " + (status.healthy ? "bound" : "reconnecting");
    verdict.dataset.healthy = String(status.healthy);
    document.getElementById("updated").textContent = "updated " + clock(now);
    drawBinds(status.binds, now);
    drawQueues(status.queues, status.store);
    drawCharts(status.charts);
    drawEvents(status.events);
    document.body.dataset.generatedAt = status.generated_at;
  }

  function problem(text) {
    const node = document.getElementById("problem");
    node.hidden = text === null;
    node.textContent = text || "";
  }

  async function refresh() {
    try {
      const response = await fetch("status.json", { cache: "no-store", credentials: "same-origin" });
      if (!response.ok) {
        problem("status.json answered " + response.status + " " + response.statusText);
      } else {
        draw(await response.json());
        lastGood = new Date();
        problem(null);
      }
    } catch (error) {
      problem("no answer from the daemon" + (lastGood ? " since " + clock(lastGood) : ""));
    }
    window.setTimeout(refresh, refreshMs);
  }

  refresh();
})();
