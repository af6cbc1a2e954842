// The compare page: several runs' learning curves overlaid with uPlot, a colour per run,
// on the x-axis the user picks (episode, pieces placed or wall time), smoothed with
// TensorBoard's debiased EMA or a plain moving average, or raw; and their evaluations,
// each a point with its 95% interval, on the same x-axis. The server has already cut each
// run to at most a thousand points, so redrawing is cheap.
"use strict";

(function (ns) {
  const page = JSON.parse(document.getElementById("compare-page").textContent);
  const $ = (id) => document.getElementById(id);

  const CHARTS = [
    { key: "lines", title: "Lines per game", wide: true },
    { key: "score", title: "Score" },
    { key: "pieces", title: "Pieces per game" },
    { key: "loss", title: "Loss" },
    { key: "epsilon", title: "Epsilon" },
  ];
  // What the slider means for each kind of smoothing.
  const SMOOTHING = {
    ema: { min: 0, max: 0.99, step: 0.01, value: 0.6, active: (v) => v > 0, label: (v) => v.toFixed(2) },
    mean: { min: 1, max: 200, step: 1, value: 25, active: (v) => v > 1, label: (v) => `${v} pts` },
  };
  const HEIGHT = 190;
  const WIDE_HEIGHT = 280;
  const AXIS = {
    stroke: "#8a90a2",
    grid: { stroke: "#232735", width: 1 },
    ticks: { stroke: "#232735" },
  };
  // Steps for a wall-time axis that land on whole seconds, minutes and hours.
  const TIME_STEPS = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 432000, 864000,
  ];
  const COMPACT = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

  const state = {
    runs: [], // the API's runs, in the page's order, each with `color` from the page
    x: $("x-axis").value,
    kind: $("smoothing-kind").value,
    amount: { ema: SMOOTHING.ema.value, mean: SMOOTHING.mean.value },
    rawOnly: $("raw").checked,
    shown: new Set(page.runs.map((run) => run.id)),
  };
  let charts = [];
  let evaluationChart = null;
  let drawPending = false;
  let lastDrawMs = null;
  let drawn = null; // what the charts show: x-axis and smoothing, as of the last draw

  function numberOrNull(value) {
    return typeof value === "number" && Number.isFinite(value) ? value : null;
  }

  // The mean of the last `window` points (fewer at the start); gaps stay gaps.
  function movingAverage(values, window) {
    const smoothed = new Array(values.length);
    let sum = 0;
    let count = 0;
    for (let i = 0; i < values.length; i += 1) {
      if (values[i] !== null) {
        sum += values[i];
        count += 1;
      }
      const leaving = i - window >= 0 ? values[i - window] : null;
      if (leaving !== null) {
        sum -= leaving;
        count -= 1;
      }
      smoothed[i] = values[i] === null || count === 0 ? null : sum / count;
    }
    return smoothed;
  }

  function smoothingActive() {
    return !state.rawOnly && SMOOTHING[state.kind].active(state.amount[state.kind]);
  }

  function smooth(values) {
    if (!smoothingActive()) return values;
    const amount = state.amount[state.kind];
    return state.kind === "ema" ? ns.debiasedEma(values, amount) : movingAverage(values, amount);
  }

  // --- axes ---

  // Decimals that write the tick step exactly: 2 for 0.25, 1 for 0.5, 0 for 50.
  function decimalsOf(increment) {
    let decimals = 0;
    const exact = (digits) => Math.round(increment * 10 ** digits) / 10 ** digits;
    while (decimals < 7 && Math.abs(exact(decimals) - increment) > increment * 1e-9) decimals += 1;
    return decimals;
  }

  function valueTicks(plot, ticks, axisIndex, space, increment) {
    const largest = Math.max(...ticks.map(Math.abs));
    if (largest >= 10000) return ticks.map((tick) => COMPACT.format(tick));
    const decimals = increment > 0 ? decimalsOf(increment) : 0;
    if (decimals <= 6) return ticks.map((tick) => tick.toFixed(decimals));
    return ticks.map((tick) => tick.toExponential(2));
  }

  function timeTicks(plot, ticks, axisIndex, space, increment) {
    const largest = Math.max(...ticks);
    return ticks.map((tick) => {
      if (increment >= 3600) return `${tick / 3600} h`;
      if (largest >= 3600) {
        const minutes = Math.round(tick / 60);
        return `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, "0")} h`;
      }
      if (increment >= 60) return `${tick / 60} min`;
      return `${tick} s`;
    });
  }

  function axisWidth(plot, labels) {
    const longest = labels ? Math.max(0, ...labels.map((label) => String(label).length)) : 4;
    return longest * 7 + 18;
  }

  function xAxis() {
    if (state.x === "wall_time") return { ...AXIS, size: 32, incrs: TIME_STEPS, values: timeTicks };
    return { ...AXIS, size: 32, values: valueTicks };
  }

  // An x value in words, for the evaluation chart's readout.
  function describeX(value) {
    if (state.x === "episode") return `episode ${value.toLocaleString("en-US")}`;
    if (state.x === "total_pieces") return `${value.toLocaleString("en-US")} placements`;
    const seconds = Math.round(value);
    const [h, m, s] = [Math.floor(seconds / 3600), Math.floor(seconds / 60) % 60, seconds % 60];
    return `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")} of training`;
  }

  // --- charts: one uPlot per metric, two series per run (faint raw, smoothed) ---

  function seriesOptions() {
    const series = [{ label: state.x }];
    for (const run of state.runs) {
      const line = { spanGaps: true, points: { show: false } };
      series.push({ ...line, label: `${run.name} (raw)`, stroke: `${run.color}38`, width: 1 });
      series.push({ ...line, label: run.name, stroke: run.color, width: 2 });
    }
    return series;
  }

  function chartWidth(figure) {
    return Math.max(200, figure.clientWidth || 400);
  }

  function buildCharts() {
    const container = $("charts");
    for (const chart of charts) chart.plot.destroy();
    container.replaceChildren();
    charts = CHARTS.filter((spec) => hasData(spec.key)).map((spec) => {
      const figure = document.createElement("figure");
      figure.className = spec.wide ? "chart wide" : "chart";
      figure.dataset.metric = spec.key;
      const caption = document.createElement("figcaption");
      caption.textContent = spec.title;
      figure.append(caption);
      container.append(figure);
      const height = spec.wide ? WIDE_HEIGHT : HEIGHT;
      const plot = new uPlot(
        {
          width: chartWidth(figure),
          height,
          legend: { show: false },
          cursor: { sync: { key: "compare" }, drag: { x: true, y: false } },
          scales: { x: { time: false } },
          axes: [xAxis(), { ...AXIS, size: axisWidth, values: valueTicks }],
          series: seriesOptions(),
        },
        [[]],
        figure,
      );
      return { key: spec.key, figure, plot, height };
    });
    draw();
  }

  function hasData(key) {
    const charted = (run) => (run.points[key] || []).some((value) => numberOrNull(value) !== null);
    return state.runs.some(charted);
  }

  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    window.requestAnimationFrame(() => {
      drawPending = false;
      draw();
    });
  }

  // Each run's own x values; uPlot.join lines them up on one axis, gaps spanned.
  function draw() {
    const started = performance.now();
    const faint = smoothingActive();
    for (const chart of charts) {
      const tables = state.runs.map((run) => {
        const raw = (run.points[chart.key] || []).map(numberOrNull);
        return [run.points[state.x], raw, smooth(raw)];
      });
      chart.plot.batch(() => {
        chart.plot.setData(uPlot.join(tables));
        state.runs.forEach((run, index) => {
          const shown = state.shown.has(run.id);
          setShown(chart.plot, 1 + 2 * index, shown && faint);
          setShown(chart.plot, 2 + 2 * index, shown);
        });
      });
    }
    lastDrawMs = performance.now() - started;
    const kind = smoothingActive() ? state.kind : "none";
    drawn = { x: state.x, smoothing: kind, amount: kind === "none" ? null : state.amount[kind] };
  }

  function setShown(plot, index, show) {
    if (plot.series[index].show !== show) plot.setSeries(index, { show });
  }

  // --- evaluations: one chart, a point and an interval bar per evaluation ---

  function buildEvaluationChart() {
    if (evaluationChart !== null) evaluationChart.destroy();
    evaluationChart = null;
    const evaluated = state.runs.some((run) => run.evaluations.some(ns.isScored));
    $("evaluations-note").textContent = "No evaluations in these runs yet.";
    $("evaluations-note").hidden = evaluated;
    $("evaluations-shown").hidden = !evaluated;
    if (!evaluated) return;
    evaluationChart = new ns.EvaluationChart($("evaluations-chart"), state.runs, {
      x: state.x,
      xAxis: xAxis(),
      describeX,
    });
    for (const run of state.runs) {
      evaluationChart.setEvaluations(run.id, run.evaluations, run.kept ? run.kept.id : null);
      evaluationChart.setShown(run.id, state.shown.has(run.id));
    }
  }

  // Each run's kept score, with its interval, beside its name.
  function showKeptScores() {
    for (const run of state.runs) {
      const entry = $("legend").querySelector(`li[data-run-id="${run.id}"] .kept-score`);
      entry.textContent = ns.scoreText(run.kept);
    }
  }

  // --- loading ---

  function showLoadError(text) {
    $("charts-note").textContent = `could not load the curves: ${text}`;
    $("evaluations-note").textContent = `could not load the evaluations: ${text}`;
  }

  async function load() {
    const note = $("charts-note");
    let response;
    try {
      response = await fetch(page.data_url, { headers: { Accept: "application/json" } });
    } catch (error) {
      showLoadError("the server did not answer; reload to retry");
      return;
    }
    if (response.status === 401) {
      window.location.reload(); // signed out elsewhere: the page sends us to sign-in
      return;
    }
    if (!response.ok) {
      showLoadError(`HTTP ${response.status}`);
      return;
    }
    const data = await response.json();
    const colors = new Map(page.runs.map((run) => [run.id, run.color]));
    state.runs = data.runs.map((entry) => ({
      id: entry.run.id,
      name: entry.run.name,
      color: colors.get(entry.run.id),
      total: entry.total,
      points: entry.points,
      evaluations: entry.evaluations,
      kept: entry.run.best_evaluation,
    }));
    const empty = state.runs.every((run) => run.points.episode.length === 0);
    note.textContent = "No finished games in these runs yet.";
    note.hidden = !empty;
    $("charts").hidden = empty;
    if (!empty) buildCharts();
    showKeptScores();
    buildEvaluationChart();
  }

  // --- controls ---

  function showSmoothingControl() {
    const spec = SMOOTHING[state.kind];
    const slider = $("smoothing");
    Object.assign(slider, { min: spec.min, max: spec.max, step: spec.step });
    slider.value = state.amount[state.kind];
    $("smoothing-value").textContent = spec.label(state.amount[state.kind]);
  }

  $("x-axis").addEventListener("change", (event) => {
    state.x = event.target.value;
    buildCharts();
    buildEvaluationChart();
  });
  $("smoothing-kind").addEventListener("change", (event) => {
    state.kind = event.target.value;
    showSmoothingControl();
    scheduleDraw();
  });
  $("smoothing").addEventListener("input", (event) => {
    state.amount[state.kind] = Number(event.target.value);
    $("smoothing-value").textContent = SMOOTHING[state.kind].label(state.amount[state.kind]);
    scheduleDraw();
  });
  $("raw").addEventListener("change", (event) => {
    state.rawOnly = event.target.checked;
    $("smoothing").disabled = $("smoothing-kind").disabled = state.rawOnly;
    scheduleDraw();
  });
  $("legend").addEventListener("change", (event) => {
    if (!event.target.classList.contains("run-shown")) return;
    const id = Number(event.target.value);
    if (event.target.checked) state.shown.add(id);
    else state.shown.delete(id);
    scheduleDraw();
    if (evaluationChart !== null) evaluationChart.setShown(id, event.target.checked);
  });
  $("only-differences").addEventListener("change", (event) => {
    $("config-table").classList.toggle("only-differences", event.target.checked);
  });
  new ResizeObserver(() => {
    for (const chart of charts) {
      chart.plot.setSize({ width: chartWidth(chart.figure), height: chart.height });
    }
  }).observe($("charts"));

  // Tests and the console can read what is drawn.
  ns.compare = {
    ready: () => charts.length > 0,
    // {x, smoothing: "ema" | "mean" | "none", amount} of the last draw.
    drawn: () => drawn,
    charted: () => charts.map((chart) => chart.key),
    // [x, raw and smoothed values of each run, in turn] as a chart draws them.
    series: (key) => {
      const chart = charts.find((candidate) => candidate.key === key);
      return chart ? chart.plot.data.map((column) => Array.from(column)) : null;
    },
    pointsPerRun: () => state.runs.map((run) => run.points.episode.length),
    // Ids of the runs whose curves the charts show.
    shownRuns: () =>
      state.runs
        .filter((run, index) => charts[0].plot.series[2 + 2 * index].show)
        .map((run) => run.id),
    lastDrawMs: () => lastDrawMs,
    // The evaluation chart's points and bars as last drawn (canvas pixels); [] when none.
    evaluationMarks: () => (evaluationChart ? evaluationChart.marks() : []),
  };

  showSmoothingControl();
  load();
})(window.TetrisTrainer);
