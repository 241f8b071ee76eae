// VLA monitoring dashboard: draws the node's snapshots, pushed as server-sent events, without reloading.
// The first event of a stream is whole ("full"); later ones carry the latest values and only the series
// points added since, which are appended here and trimmed to the node's history span and size.
"use strict";

(() => {
  const SERIES_OF_CHART = {
    latency: [["latency_ms_p50", "p50", "--series-1"], ["latency_ms_p99", "p99", "--series-2"]],
    fps: [["fps", "control rate", "--series-3"]],
    errors: [["error_rate_percent", "error rate", "--err"]],
    resources: [["cpu_percent", "CPU", "--series-1"], ["memory_percent", "memory", "--series-3"],
                ["gpu_percent", "GPU", "--series-4"], ["gpu_memory_percent", "GPU memory", "--series-2"]],
  };
  // y axes: resources are 0..100 %; the error rate starts at 0..10 % and grows with its values.
  const Y_RANGE = {resources: {max: 100}, errors: {suggestedMax: 10}};
  const TICK_STEPS_S = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600];
  const LEVEL_CLASS = {ok: "ok", warn: "warn", error: "error", unknown: "unknown"};
  const SAFETY_CLASS = {OK: "ok", LIMITED: "warn", STOPPED: "error", EMERGENCY_STOP: "error"};
  const HEALTH_CLASS = {healthy: "ok", degraded: "warn", critical: "error"};
  const ALERT_CLASS = {INFO: "unknown", WARNING: "warn", ERROR: "error", CRITICAL: "error"};
  const ROBOT_CLASS = {available: "ok", busy: "ok", charging: "warn", error: "error", offline: "error"};

  const store = {snap: null, series: {}, selected: null, charts: {}, now: 0, span: 300, maxPoints: 600};
  // Hooks for tests and benchmarks: the open stream, the newest snapshot, a callback after each render.
  const api = {source: null, renders: 0, onRender: [], snapshot: () => store.snap};
  window.vlaDashboard = api;

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const field = (name) => $$(`[data-field="${name}"]`);
  const known = (v) => v !== null && v !== undefined && Number.isFinite(v);
  const fmt = (v, digits = 1) => (known(v) ? v.toFixed(digits) : "—");
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  function setText(name, text) {
    for (const el of field(name)) {
      if (el.textContent !== text) el.textContent = text;
    }
  }

  function setPill(el, cls, text) {
    el.className = `pill pill-${cls}`;
    el.textContent = text;
  }

  function ago(seconds) {
    if (!known(seconds)) return "—";
    if (seconds < 1) return "now";
    if (seconds < 90) return `${Math.round(seconds)} s ago`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
    return `${(seconds / 3600).toFixed(1)} h ago`;
  }

  function clockText(t) {
    // Wall time is Unix seconds; simulated time starts near zero.
    if (t > 1e9) return new Date(t * 1000).toLocaleTimeString([], {hour12: false});
    return `${t.toFixed(1)} s`;
  }

  // ---- series kept in the page ----
  function mergeSeries(snap) {
    for (const [rid, robot] of Object.entries(snap.robots)) {
      if (snap.full || !store.series[rid]) store.series[rid] = {};
      const mine = store.series[rid];
      for (const [name, points] of Object.entries(robot.series)) {
        if (!mine[name]) mine[name] = [];
        const arr = mine[name];
        if (snap.full) arr.splice(0, arr.length, ...points);
        else if (points.length) arr.push(...points);
        const cut = snap.now - store.span;
        let drop = 0;
        while (drop < arr.length && arr[drop][0] < cut) drop++;
        drop = Math.max(drop, arr.length - store.maxPoints);
        if (drop > 0) arr.splice(0, drop);
      }
    }
  }

  // ---- charts ----
  function axisColors() {
    return {grid: css("--grid"), text: css("--muted"), border: css("--border")};
  }

  // Ticks at whole steps back from now (0 s, -30 s, -60 s, ...), whatever the clock's value.
  function timeTicks(axis) {
    const step = TICK_STEPS_S.find((s) => store.span / s <= 6) || TICK_STEPS_S[TICK_STEPS_S.length - 1];
    const ticks = [];
    for (let back = 0; back <= store.span + 1e-9; back += step) ticks.unshift({value: store.now - back});
    axis.ticks = ticks;
  }

  function relTime(seconds) {
    const s = Math.round(seconds);
    if (s === 0) return "now";
    return Math.abs(s) >= 120 && s % 60 === 0 ? `${s / 60} min` : `${s} s`;
  }

  function makeChart(key) {
    const canvas = document.getElementById(`chart-${key}`);
    const colors = axisColors();
    const defs = SERIES_OF_CHART[key];
    const chart = new Chart(canvas, {
      type: "line",
      data: {
        datasets: defs.map(([, label, color]) => ({
          label, data: [], borderColor: css(color), backgroundColor: css(color), borderWidth: 1.8,
          pointRadius: 0, pointHitRadius: 6, tension: 0.25, spanGaps: false,
        })),
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        normalized: true,
        interaction: {mode: "nearest", axis: "x", intersect: false},
        scales: {
          x: {
            type: "linear",
            grid: {color: colors.grid},
            border: {color: colors.border},
            afterBuildTicks: timeTicks,
            ticks: {color: colors.text, maxRotation: 0, callback: (v) => relTime(v - store.now)},
          },
          y: {
            beginAtZero: true,
            ...(Y_RANGE[key] || {}),
            grid: {color: colors.grid},
            ticks: {color: colors.text, maxTicksLimit: 6},
          },
        },
        plugins: {
          legend: {
            display: defs.length > 1, position: "top", align: "end",
            labels: {color: colors.text, boxWidth: 10, boxHeight: 10, usePointStyle: true, pointStyle: "rectRounded"},
          },
          tooltip: {
            callbacks: {
              title: (items) => (items.length ? relTime(items[0].parsed.x - store.now) : ""),
              label: (item) => `${item.dataset.label}: ${fmt(item.parsed.y, 2)}`,
            },
          },
        },
      },
    });
    chart.$key = key;
    return chart;
  }

  function recolour() {
    const colors = axisColors();
    for (const chart of Object.values(store.charts)) {
      SERIES_OF_CHART[chart.$key].forEach(([, , color], i) => {
        chart.data.datasets[i].borderColor = css(color);
        chart.data.datasets[i].backgroundColor = css(color);
      });
      for (const axis of Object.values(chart.options.scales)) {
        axis.grid.color = colors.grid;
        axis.ticks.color = colors.text;
        if (axis.border) axis.border.color = colors.border;
      }
      chart.options.plugins.legend.labels.color = colors.text;
      chart.update("none");
    }
  }

  function drawCharts(rid) {
    if (typeof Chart === "undefined") return;  // Chart.js missing: the numbers still update
    if (!Object.keys(store.charts).length) {
      Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
      for (const key of Object.keys(SERIES_OF_CHART)) store.charts[key] = makeChart(key);
    }
    const mine = store.series[rid] || {};
    for (const [key, chart] of Object.entries(store.charts)) {
      SERIES_OF_CHART[key].forEach(([name], i) => {
        const data = mine[name] || [];
        if (chart.data.datasets[i].data !== data) chart.data.datasets[i].data = data;
      });
      chart.options.scales.x.min = store.now - store.span;
      chart.options.scales.x.max = store.now;
      chart.update("none");
    }
  }

  // ---- tabs, fleet, robot ----
  function drawTabs(snap) {
    const nav = $("#robot-tabs");
    const ids = Object.keys(snap.robots);
    if (nav.dataset.ids !== ids.join(",")) {
      nav.dataset.ids = ids.join(",");
      nav.replaceChildren(...ids.map((rid) => {
        const b = document.createElement("button");
        b.className = "tab";
        b.type = "button";
        b.dataset.robot = rid;
        b.innerHTML = '<span class="dot"></span><span class="label"></span>';
        b.querySelector(".label").textContent = rid;
        b.addEventListener("click", () => select(rid));
        return b;
      }));
    }
    for (const b of $$(".tab", nav)) {
      const level = snap.robots[b.dataset.robot].attention.level;
      b.querySelector(".dot").className = `dot dot-${LEVEL_CLASS[level]}`;
      b.setAttribute("aria-selected", String(b.dataset.robot === store.selected));
      b.title = snap.robots[b.dataset.robot].attention.reasons.join("; ") || "all good";
    }
  }

  function select(rid) {
    store.selected = rid;
    history.replaceState(null, "", `#${encodeURIComponent(rid)}`);
    if (store.snap) render(store.snap);
  }

  function drawFleet(snap) {
    const robots = Object.values(snap.fleet);
    const section = $("#fleet");
    section.hidden = robots.length === 0;
    if (!robots.length) return;
    $("#fleet-count").textContent = `${robots.length} robot${robots.length === 1 ? "" : "s"} reporting on /robot_status`;
    const rows = robots.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.robot = r.robot_id;
      if (r.stale) tr.className = "stale";
      const status = r.stale ? "offline" : r.status;
      const battery = Math.max(0, Math.min(100, r.battery));
      const barClass = battery < 15 ? "error" : battery < 30 ? "warn" : "";
      const pos = Array.isArray(r.position) ? r.position.slice(0, 2).map((v) => fmt(v, 2)).join(", ") : "—";
      tr.innerHTML = `<td class="rid"></td><td><span class="pill"></span></td>
        <td><div class="battery"><div class="bar"><i class="${barClass}" style="width:${battery}%"></i></div>
        <span class="num" data-fleet="battery">${fmt(r.battery, 0)} %</span></div></td>
        <td class="task"></td><td class="num">${pos}</td><td class="num">${ago(r.age_s)}</td>`;
      tr.querySelector(".rid").textContent = r.robot_id;
      setPill(tr.querySelector(".pill"), ROBOT_CLASS[status] || "unknown", r.stale ? "offline (no report)" : status);
      tr.querySelector(".task").textContent = r.current_task_id || "—";
      return tr;
    });
    $("#fleet-table tbody").replaceChildren(...rows);
  }

  function markStale(tile, block) {
    tile.classList.toggle("missing", !block);
    const stale = Boolean(block && block.stale);
    tile.classList.toggle("stale", stale);
    if (stale) tile.dataset.stale = `stale · ${ago(block.age_s)}`;
  }

  function drawRobot(rid, robot) {
    $("#robot-name").textContent = rid;
    const att = robot.attention;
    setPill($("#robot-attention"), LEVEL_CLASS[att.level],
            {ok: "all good", warn: "attention", error: "action needed", unknown: "waiting for data"}[att.level]);
    $("#robot-reasons").textContent = att.reasons.join(" · ");
    const inf = robot.inference;
    $("#robot-meta").textContent = inf ? `${inf.mode} · model ${inf.model_version || "?"}` : "";

    const safety = robot.safety;
    markStale($("#tile-safety"), safety);
    const sp = $('[data-field="safety_status"]');
    if (safety) {
      setPill(sp, safety.stale ? "error" : SAFETY_CLASS[safety.status], safety.status.replace("_", " "));
      setText("safety_reason", safety.reason || (safety.status === "OK" ? "commands pass unchanged" : "—"));
    } else {
      setPill(sp, "unknown", "unknown");
      setText("safety_reason", "no safety status yet");
    }

    const health = robot.health;
    markStale($("#tile-health"), health);
    const hp = $('[data-field="health_level"]');
    const chips = $('[data-field="health_components"]');
    if (health) {
      setPill(hp, HEALTH_CLASS[health.level] || "unknown", health.level);
      const details = health.details || {};
      chips.replaceChildren(...Object.entries(health.components).map(([name, ok]) => {
        const c = document.createElement("span");
        c.className = ok ? "chip" : "chip bad";
        c.textContent = `${ok ? "✓" : "✕"} ${name}`;
        c.title = (details[name] && details[name].reason) || (ok ? "healthy" : "unhealthy");
        return c;
      }));
    } else {
      setPill(hp, "unknown", "unknown");
      chips.replaceChildren();
    }

    markStale($("#tile-fps"), inf);
    markStale($("#tile-latency"), inf);
    setText("fps", fmt(inf && inf.fps, 1));
    setText("inference_task", inf ? (inf.current_task || "idle") : "—");
    setText("latency_ms_p50", fmt(inf && inf.latency_ms_p50, 1));
    setText("latency_ms_p99", fmt(inf && inf.latency_ms_p99, 1));
    setText("latency_ms_mean", fmt(inf && inf.latency_ms_mean, 1));

    const m = robot.metrics;
    markStale($("#tile-errors"), m);
    setText("error_rate_percent", fmt(m && m.error_rate_percent, 1));
    setText("error_count", m ? String(m.error_count) : "—");
    setText("inference_count", m ? String(m.inference_count) : "—");

    const res = robot.resources;
    markStale($("#tile-resources"), res);
    for (const key of ["cpu_percent", "memory_percent", "gpu_percent"]) {
      const v = res ? res[key] : null;
      setText(key, known(v) ? `${v.toFixed(0)} %` : (res && key.startsWith("gpu") ? "no GPU" : "—"));
      const bar = $(`[data-bar="${key}"]`);
      bar.style.width = `${known(v) ? Math.max(0, Math.min(100, v)) : 0}%`;
      bar.className = known(v) && v >= 90 ? "error" : known(v) && v >= 80 ? "warn" : "";
    }

    drawAlerts(robot.alerts);
  }

  function drawAlerts(alerts) {
    const rows = alerts.active.map((a) => {
      const tr = document.createElement("tr");
      tr.innerHTML = '<td><span class="pill"></span></td><td class="type"></td><td class="msg"></td>' +
                     '<td class="num value"></td><td class="num since"></td>';
      setPill(tr.querySelector(".pill"), ALERT_CLASS[a.level] || "unknown", a.level);
      tr.querySelector(".type").textContent = a.key;
      tr.querySelector(".msg").textContent = a.message;
      tr.querySelector(".value").textContent = fmt(a.value, 2);
      tr.querySelector(".since").textContent = ago(a.age_s);
      return tr;
    });
    $("#alerts-active tbody").replaceChildren(...rows);
    $("#alerts-active").hidden = rows.length === 0;
    $("#alerts-none").hidden = rows.length > 0;
    setText("active_alerts", `${rows.length} active`);

    const items = alerts.recent.map((a) => {
      const li = document.createElement("li");
      li.innerHTML = '<span class="when"></span><span class="pill"></span><span class="text"></span>';
      li.querySelector(".when").textContent = ago(a.age_s);
      setPill(li.querySelector(".pill"), a.state === "resolved" ? "ok" : ALERT_CLASS[a.level] || "unknown",
              a.state === "resolved" ? "resolved" : a.level);
      const text = li.querySelector(".text");
      text.textContent = `${a.key}: ${a.message}`;
      text.className = `text state-${a.state}`;
      return li;
    });
    $("#alerts-recent").replaceChildren(...items);
    $("#events-none").hidden = items.length > 0;
  }

  function drawFooter(snap) {
    setText("bad_input_total", String(snap.bad_input.total));
    const worst = Object.entries(snap.bad_input.by_source).sort((a, b) => b[1] - a[1]).slice(0, 3);
    $("#bad-input-detail").textContent = worst.map(([src, n]) => `${src}: ${n}`).join(" · ");
  }

  function render(snap) {
    const ids = Object.keys(snap.robots);
    if (!ids.includes(store.selected)) {
      const wanted = decodeURIComponent(location.hash.slice(1));
      store.selected = ids.includes(wanted) ? wanted : ids[0];
    }
    setText("now", clockText(snap.now));
    drawTabs(snap);
    drawFleet(snap);
    if (store.selected) {
      drawRobot(store.selected, snap.robots[store.selected]);
      drawCharts(store.selected);
    }
    drawFooter(snap);
    api.renders += 1;
    for (const hook of api.onRender) hook(snap);
  }

  // ---- the stream ----
  function setConnection(cls, text) {
    $("#conn-dot").className = `dot dot-${cls}`;
    $("#conn-text").textContent = text;
  }

  function connect() {
    const source = new EventSource("api/events");
    api.source = source;
    source.addEventListener("open", () => setConnection("ok", "live"));
    source.addEventListener("error", () => setConnection("error", "reconnecting…"));
    source.addEventListener("snapshot", (event) => {
      const snap = JSON.parse(event.data);
      store.now = snap.now;
      store.span = snap.config.history_s;
      store.maxPoints = snap.config.history_points;
      mergeSeries(snap);
      store.snap = snap;
      setConnection("ok", "live");
      render(snap);
    });
  }

  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", recolour);
  window.addEventListener("hashchange", () => select(decodeURIComponent(location.hash.slice(1))));
  connect();
})();
