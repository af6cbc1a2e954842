// The experiment page: each configuration's learning curve (the IQM across its seeds with
// its 95% band), its final score with its interval and its runs; a ranking by the
// interval's lower bound; the probability of improvement between configurations; and, for
// a sweep, the swept settings against the score in parallel coordinates. Everything is
// drawn from the figures the server computed (trainer/experiment_summary.py): at load, and
// again on each update from the experiment's socket.
"use strict";

(function (ns) {
  const $ = (id) => document.getElementById(id);
  const page = JSON.parse($("experiment-page").textContent);
  const ACTIVE = ["queued", "running", "stopping"];
  const CHART_HEIGHT = 300;
  const AXIS = { stroke: "#8a90a2", grid: { stroke: "#232735", width: 1 }, ticks: { stroke: "#232735" } };
  const COMPACT = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
  const SVG = "http://www.w3.org/2000/svg";

  let figures = JSON.parse($("experiment-figures").textContent);
  let curves = null; // {key, plot}: rebuilt when the configurations change
  let updates = 0; // figures received over the socket
  let pointsDrawn = 0;
  let parallelLines = [];

  // --- words ---

  function colorOf(trial) {
    return page.palette[trial % page.palette.length];
  }

  function labelOf(configuration) {
    return `config ${configuration.trial + 1}`;
  }

  // A setting's value, short: a sampled float to four significant digits, as the server
  // writes it (visualizer/experiments.py, params_text).
  function valueText(value) {
    if (Number.isInteger(value)) return value.toLocaleString("en-US");
    if (typeof value === "number") return value.toLocaleString("en-US", { maximumSignificantDigits: 4 });
    if (typeof value === "boolean") return value ? "yes" : "no";
    return String(value);
  }

  function paramsText(params) {
    const entries = Object.entries(params);
    if (!entries.length) return "base settings";
    return entries.map(([name, value]) => `${name}=${valueText(value)}`).join(", ");
  }

  function probabilityText(entry) {
    const digits = (value) => value.toFixed(2);
    return `${digits(entry.probability)} (95% CI ${digits(entry.ci95_low)}–${digits(entry.ci95_high)})`;
  }

  function element(tag, { className, text } = {}, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    node.append(...children);
    return node;
  }

  function swatch(trial) {
    const mark = element("span", { className: "swatch" });
    mark.style.setProperty("--run-color", colorOf(trial));
    mark.setAttribute("aria-hidden", "true");
    return mark;
  }

  function badge(status) {
    return element("span", { className: `badge status-${status}`, text: status });
  }

  function runLink(run, text) {
    const link = element("a", { text });
    link.href = page.run_url.replace("/0/", `/${run}/`);
    return link;
  }

  // --- the head: status, Stop, counts ---

  function renderHead() {
    const status = $("experiment-status");
    status.textContent = figures.status;
    status.className = `badge status-${figures.status}`;
    const stop = $("stop-form");
    if (stop) stop.hidden = figures.status !== "running";
    const seeds = figures.configurations.flatMap((configuration) => configuration.seeds);
    const total = figures.trials * figures.seeds;
    const ended = seeds.filter((seed) => !ACTIVE.includes(seed.status)).length;
    const evaluated = figures.configurations.reduce((sum, c) => sum + c.evaluated, 0);
    $("stat-configurations").textContent = `${figures.configurations.length} of ${figures.trials}`;
    $("stat-runs").textContent = `${ended} of ${total}`;
    $("stat-evaluated").textContent = `${evaluated} of ${total}`;
    $("stat-points").textContent = pointsDrawn.toLocaleString("en-US");
  }

  // --- the learning curves: per configuration its IQM line and its shaded 95% band ---

  function curveTable() {
    const xs = [...new Set(figures.configurations.flatMap((c) => c.curve.x))].sort((a, b) => a - b);
    const columns = [xs];
    for (const configuration of figures.configurations) {
      const { curve } = configuration;
      const at = new Map(curve.x.map((x, i) => [x, i]));
      const column = (values) => xs.map((x) => (at.has(x) ? values[at.get(x)] : null));
      columns.push(column(curve.iqm), column(curve.high), column(curve.low));
    }
    return columns;
  }

  function buildCurves(key) {
    const figure = $("curves-chart");
    if (curves !== null) curves.plot.destroy();
    const series = [{ label: "pieces placed" }];
    const bands = [];
    figures.configurations.forEach((configuration, index) => {
      const color = colorOf(configuration.trial);
      const edge = { stroke: "transparent", width: 0, points: { show: false }, spanGaps: true };
      series.push(
        { label: labelOf(configuration), stroke: color, width: 2, spanGaps: true, points: { show: false } },
        { ...edge, label: `${labelOf(configuration)} 95% high` },
        { ...edge, label: `${labelOf(configuration)} 95% low` },
      );
      bands.push({ series: [3 * index + 2, 3 * index + 3], fill: `${color}33` });
    });
    const plot = new uPlot(
      {
        width: Math.max(300, figure.clientWidth || 600),
        height: CHART_HEIGHT,
        legend: { show: false },
        cursor: { drag: { x: true, y: false } },
        scales: { x: { time: false }, y: { range: (u, low, high) => [0, Math.max(1, high) * 1.05] } },
        axes: [
          { ...AXIS, size: 32, values: (u, ticks) => ticks.map((tick) => COMPACT.format(tick)) },
          { ...AXIS, size: 50, values: (u, ticks) => ticks.map((tick) => COMPACT.format(tick)) },
        ],
        series,
        bands,
      },
      [[], ...series.slice(1).map(() => [])],
      figure,
    );
    curves = { key, plot };
  }

  function renderCurves() {
    pointsDrawn = figures.configurations.reduce((sum, c) => sum + c.curve.x.length, 0);
    $("curves-empty").hidden = pointsDrawn > 0;
    $("curves-chart").hidden = pointsDrawn === 0;
    if (pointsDrawn === 0) return;
    const key = figures.configurations.map((configuration) => configuration.trial).join(",");
    if (curves === null || curves.key !== key) buildCurves(key);
    curves.plot.setData(curveTable());
  }

  // --- the configurations: settings, state, final score, runs ---

  function renderConfigurations() {
    const items = figures.configurations.map((configuration) => {
      const item = element("li");
      item.dataset.trial = configuration.trial;
      const head = element(
        "div",
        { className: "configuration-head" },
        swatch(configuration.trial),
        element("strong", { text: labelOf(configuration) }),
        element("span", { className: "params", text: paramsText(configuration.params) }),
        badge(configuration.state),
      );
      const runs = `${figures.seeds} run${figures.seeds === 1 ? "" : "s"}`;
      const final = element(
        "p",
        { className: "final" },
        "final IQM: ",
        finalScore(configuration),
        element("span", { className: "muted evaluated", text: ` · ${configuration.evaluated} of ${runs} evaluated` }),
      );
      const seeds = element("ul", { className: "seeds" });
      configuration.seeds.forEach((seed, index) => {
        seeds.append(
          element(
            "li",
            {},
            runLink(seed.run, `seed ${index + 1} · run #${seed.run}`),
            " ",
            badge(seed.pruned ? "pruned" : seed.status),
            element("span", { className: "muted", text: ` ${ns.scoreText(seed.evaluation)}` }),
          ),
        );
      });
      item.append(head, final, seeds);
      return item;
    });
    $("configuration-list").replaceChildren(...items);
  }

  // The headline number set apart from its interval, as the run viewer shows a score.
  function finalScore(configuration) {
    const parts = ns.iqmParts(configuration, configuration.evaluated);
    const score = element("span", { className: "final-score" });
    if (parts === null) score.textContent = "–";
    else score.append(element("b", { text: parts.value }), ` ${parts.detail}`);
    return score;
  }

  // --- the ranking and the probability of improvement ---

  function configurationCell(configuration) {
    return element(
      "td",
      { className: "name" },
      swatch(configuration.trial),
      ` ${labelOf(configuration)} `,
      element("span", { className: "muted", text: paramsText(configuration.params) }),
    );
  }

  function renderRanking() {
    const byTrial = new Map(figures.configurations.map((c) => [c.trial, c]));
    const rows = figures.ranking.map((trial, index) => {
      const configuration = byTrial.get(trial);
      const row = element(
        "tr",
        {},
        element("td", { className: "num", text: String(index + 1) }),
        configurationCell(configuration),
        element("td", { className: "num", text: ns.formatLines(configuration.ci95_low, configuration.iqm) }),
        element("td", { className: "score", text: ns.iqmText(configuration, configuration.evaluated) }),
      );
      row.dataset.trial = trial;
      return row;
    });
    $("ranking").tBodies[0].replaceChildren(...rows);
    $("ranking-empty").hidden = rows.length > 0;

    const improvements = figures.improvement.map((entry) => {
      const row = element(
        "tr",
        {},
        configurationCell(byTrial.get(entry.x)),
        configurationCell(byTrial.get(entry.y)),
        element("td", { className: "score", text: probabilityText(entry) }),
      );
      row.dataset.pair = `${entry.x}>${entry.y}`;
      return row;
    });
    $("improvement").tBodies[0].replaceChildren(...improvements);
    $("improvement-empty").hidden = improvements.length > 0;
  }

  // --- parallel coordinates: one axis per swept setting, then the score ---

  // The swept settings in the scheduler's order (the grid's, then the ranges'), each with
  // how its axis places a value: evenly spaced values for lists, a (log) scale for ranges.
  function dimensions() {
    const found = [];
    for (const [field, values] of Object.entries(figures.grid)) found.push(listAxis(field, values));
    for (const [field, spec] of Object.entries(figures.space)) {
      if (spec.choices) found.push(listAxis(field, spec.choices));
      else found.push(rangeAxis(field, spec.low, spec.high, spec.log));
    }
    return found;
  }

  function listAxis(field, values) {
    const ordered = values.every((v) => typeof v === "number") ? [...values].sort((a, b) => a - b) : values;
    const keys = ordered.map((value) => JSON.stringify(value));
    const step = ordered.length > 1 ? 1 / (ordered.length - 1) : 0;
    return {
      field,
      title: field,
      place: (value) => (ordered.length > 1 ? keys.indexOf(JSON.stringify(value)) * step : 0.5),
      ticks: ordered.map((value, index) => ({ at: ordered.length > 1 ? index * step : 0.5, text: valueText(value) })),
    };
  }

  function rangeAxis(field, low, high, log) {
    const scale = log ? Math.log : (value) => value;
    const [a, b] = [scale(low), scale(high)];
    const place = (value) => (scale(value) - a) / (b - a);
    const middle = log ? Math.sqrt(low * high) : (low + high) / 2;
    return {
      field,
      title: log ? `${field} (log)` : field,
      place,
      ticks: [low, middle, high].map((value) => ({ at: place(value), text: valueText(Number(value.toPrecision(3))) })),
    };
  }

  function scoreAxis() {
    const scored = figures.configurations.filter((c) => typeof c.iqm === "number");
    const top = Math.max(1, ...scored.map((c) => c.ci95_high ?? c.iqm)) * 1.05;
    const place = (value) => value / top;
    return {
      field: "score",
      title: "final IQM (lines)",
      place,
      ticks: [0, top / 2, top].map((value) => ({ at: place(value), text: COMPACT.format(value) })),
    };
  }

  function svgElement(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderParallel() {
    const axes = dimensions();
    const sweep = figures.configurations.length > 1 && axes.length > 0;
    $("parallel-card").hidden = !sweep;
    parallelLines = [];
    if (!sweep) {
      $("parallel").replaceChildren();
      return;
    }
    axes.push(scoreAxis());
    const width = Math.max(420, $("parallel").clientWidth || 800);
    const height = 280;
    const margin = { top: 34, bottom: 24, left: 70, right: 90 };
    const xOf = (index) => margin.left + (index * (width - margin.left - margin.right)) / (axes.length - 1);
    const yOf = (at) => height - margin.bottom - at * (height - margin.top - margin.bottom);
    const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
    svg.append(svgElement("title", {}, "each configuration's swept settings and its final IQM"));
    axes.forEach((axis, index) => {
      const x = xOf(index);
      const group = svgElement("g", { class: "axis", "data-field": axis.field });
      group.append(svgElement("line", { x1: x, x2: x, y1: yOf(0), y2: yOf(1) }));
      group.append(svgElement("text", { x, y: margin.top - 14, class: "axis-title" }, axis.title));
      for (const tick of axis.ticks) {
        group.append(svgElement("text", { x: x - 6, y: yOf(tick.at) + 4, class: "tick" }, tick.text));
      }
      svg.append(group);
    });
    const scoreIndex = axes.length - 1;
    for (const configuration of figures.configurations) {
      const scored = typeof configuration.iqm === "number";
      const points = axes
        .slice(0, scored ? axes.length : scoreIndex)
        .map((axis, index) => {
          const value = index === scoreIndex ? configuration.iqm : configuration.params[axis.field];
          return [xOf(index), yOf(axis.place(value))];
        });
      const color = colorOf(configuration.trial);
      const line = svgElement("polyline", {
        points: points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "),
        stroke: color,
        class: scored ? "configuration" : "configuration unscored",
        "data-trial": configuration.trial,
      });
      const score = ns.iqmText(configuration, configuration.evaluated);
      line.append(svgElement("title", {}, `${labelOf(configuration)}: ${paramsText(configuration.params)} → ${score}`));
      svg.append(line);
      if (scored) {
        const axis = axes[scoreIndex];
        const x = xOf(scoreIndex) + 8 + 5 * (configuration.trial % 6);
        svg.append(svgElement("line", {
          x1: x, x2: x, y1: yOf(axis.place(configuration.ci95_low)), y2: yOf(axis.place(configuration.ci95_high)),
          stroke: color, class: "interval",
        }));
      }
      parallelLines.push({ trial: configuration.trial, points, scored });
    }
    $("parallel").replaceChildren(svg);
  }

  // --- everything, from one set of figures ---

  function render(next) {
    figures = next;
    renderCurves();
    renderHead();
    renderConfigurations();
    renderRanking();
    renderParallel();
  }

  function showNotice(text) {
    $("notice").textContent = text;
    $("notice").hidden = !text;
  }

  const handlers = {
    snapshot(message) {
      updates += 1;
      render(message.experiment);
    },
    experiment(message) {
      updates += 1;
      render(message.experiment);
    },
    error(message) {
      showNotice(message.error);
    },
  };

  const live = new ns.LiveSocket({
    path: page.socket_path,
    handlers,
    loginUrl: page.login_url,
    onState(state, label, waitMs) {
      const indicator = $("connection");
      indicator.dataset.state = state;
      const waiting = `reconnecting in ${((waitMs || 0) / 1000).toFixed(1)} s`;
      indicator.querySelector(".label").textContent = state === "reconnecting" ? waiting : label;
    },
  });

  $("notice").addEventListener("click", () => showNotice(""));
  window.addEventListener("online", () => live.reconnectNow());
  new ResizeObserver(() => {
    if (curves !== null) curves.plot.setSize({ width: Math.max(300, $("curves-chart").clientWidth), height: CHART_HEIGHT });
  }).observe($("curves"));

  // Tests and the console can read what is drawn.
  ns.experiment = {
    figures: () => figures,
    // Points of the curves drawn now, over every configuration.
    pointsDrawn: () => pointsDrawn,
    // Figures received over the socket (its snapshots and updates).
    updates: () => updates,
    // [x, then per configuration its IQM, band top and band bottom] as the chart holds them.
    curveSeries: () => (curves ? curves.plot.data.map((column) => Array.from(column)) : null),
    // The parallel-coordinates lines: [{trial, points: [[x, y], ...], scored}].
    parallelLines: () => parallelLines.map((line) => ({ ...line })),
  };

  render(figures);
  live.connect();
})(window.TetrisTrainer);
