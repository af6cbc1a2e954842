// Charts with uPlot: live learning curves, one chart per metric, with a TensorBoard-style
// smoothing slider (debiased exponential moving average) and a raw toggle; a cem run's
// search distribution, its weights in one chart; and the evaluations of one or more runs,
// each a point with its 95% interval.
"use strict";

window.TetrisTrainer = window.TetrisTrainer || {};

(function (ns) {
  // Keys of every metric point that are not curves of their own.
  const NOT_CHARTED = new Set([
    "episode", "pieces", "reward", "placements_per_second", "total_pieces", "wall_time",
    "lines_min", "lines_max",
  ]);
  // Charts a run of these algorithms shows from the start.
  const BASE_CHARTS = [
    { key: "lines", title: "Lines per game", color: "#4fc3f7" },
    { key: "score", title: "Score", color: "#ffd54f" },
    { key: "loss", title: "Loss", color: "#ef5350", algorithms: ["dqn"] },
    { key: "epsilon", title: "Epsilon", color: "#ab47bc", algorithms: ["dqn"] },
  ];
  // Charts made once their metric appears in the data, before other new ones, with a
  // title in words (older runs do not send these).
  const TITLED_CHARTS = [
    { key: "dqn/value", title: "Value of the boards faced", color: "#26c6da" },
    { key: "dqn/td_error", title: "TD error", color: "#ff9100" },
    { key: "cem/workers", title: "Worker processes per generation", color: "#9ccc65" },
  ];
  const EXTRA_COLORS = ["#66bb6a", "#ff9100", "#26c6da", "#ec407a", "#9ccc65", "#7e57c2"];
  // A cem run's search distribution, feature by feature: the mean and the std of each
  // weight, drawn together in one chart rather than a chart per key.
  const WEIGHT_PREFIX = "cem/weight/";
  const WEIGHT_STD_PREFIX = "cem/weight_std/";
  const WEIGHTS_KEY = "cem/weight";
  const WEIGHT_COLORS = [
    "#4fc3f7", "#ffd54f", "#ef5350", "#66bb6a", "#ba68c8", "#ff9100", "#f06292", "#7986cb",
  ];
  const WEIGHT_CHART_HEIGHT = 240;
  // The browser keeps at most this many points; beyond it, neighbours are averaged in pairs.
  const MAX_POINTS = 4000;
  const CHART_HEIGHT = 170;
  const AXIS = { stroke: "#8a90a2", grid: { stroke: "#232735", width: 1 }, ticks: { stroke: "#232735" } };

  // TensorBoard's smoothing: an EMA whose start-up bias towards 0 is divided out.
  function debiasedEma(values, weight) {
    const smoothed = new Array(values.length);
    let last = 0;
    let count = 0;
    for (let i = 0; i < values.length; i += 1) {
      const value = values[i];
      if (value === null || !Number.isFinite(value)) {
        smoothed[i] = null;
        continue;
      }
      last = last * weight + (1 - weight) * value;
      count += 1;
      const debias = weight === 1 ? 1 : 1 - Math.pow(weight, count);
      smoothed[i] = last / debias;
    }
    return smoothed;
  }

  function numberOrNull(value) {
    return typeof value === "number" && Number.isFinite(value) ? value : null;
  }

  // Average two neighbouring points (the later one's episode): halves the history, keeps its shape.
  function mergePair(a, b) {
    const merged = { ...a, ...b };
    for (const key of Object.keys(merged)) {
      if (key === "episode") continue;
      const x = numberOrNull(a[key]);
      const y = numberOrNull(b[key]);
      if (x !== null && y !== null) merged[key] = (x + y) / 2;
    }
    return merged;
  }

  const COMPACT = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

  // Tick labels that stay short: 12K and 3.4M for big numbers; for small ones, as many
  // decimals as the tick spacing needs (0.049, 0.050), or exponents below 1e-6.
  function tickLabels(plot, ticks, axisIndex, space, increment) {
    const largest = Math.max(...ticks.map(Math.abs));
    if (largest >= 10000) return ticks.map((tick) => COMPACT.format(tick));
    const decimals = increment > 0 ? Math.max(0, Math.ceil(-Math.log10(increment) - 1e-9)) : 0;
    if (decimals <= 6) return ticks.map((tick) => tick.toFixed(decimals));
    const digits = Math.max(1, Math.ceil(Math.log10(largest / increment)));
    return ticks.map((tick) => tick.toExponential(digits));
  }

  // Room for the longest tick label, so no label is cut off.
  function axisWidth(plot, labels) {
    const longest = labels ? Math.max(0, ...labels.map((label) => String(label).length)) : 4;
    return longest * 7 + 18;
  }

  // "charts/lr" -> "lr", "population_mean_lines" -> "population mean lines".
  function titleOf(key) {
    return key.split("/").pop().replace(/_+/g, " ");
  }

  function isWeightKey(key) {
    return key.startsWith(WEIGHT_PREFIX) || key.startsWith(WEIGHT_STD_PREFIX);
  }

  class Chart {
    constructor(container, { key, title, color }) {
      this.key = key;
      this.element = document.createElement("figure");
      this.element.className = "chart";
      this.element.dataset.metric = key;
      const caption = document.createElement("figcaption");
      caption.textContent = title;
      caption.title = key;
      this.element.append(caption);
      container.append(this.element);
      this.plot = new uPlot(
        {
          width: this.width(),
          height: CHART_HEIGHT,
          legend: { show: false },
          cursor: { sync: { key: "episodes" }, drag: { x: true, y: false } },
          scales: { x: { time: false } },
          axes: [{ ...AXIS, size: 32 }, { ...AXIS, size: axisWidth, values: tickLabels }],
          series: [
            { label: "episode" },
            { label: `${title} (raw)`, stroke: `${color}55`, width: 1, points: { show: false } },
            { label: title, stroke: color, width: 2, points: { show: false } },
          ],
        },
        [[], [], []],
        this.element,
      );
    }

    width() {
      return Math.max(200, this.element.clientWidth || 400);
    }

    resize() {
      this.plot.setSize({ width: this.width(), height: CHART_HEIGHT });
    }

    update(episodes, points, smoothing, showRawOnly) {
      const values = points.map((point) => numberOrNull(point[this.key]));
      const smooth = showRawOnly || smoothing === 0 ? values : debiasedEma(values, smoothing);
      // The faint raw line sits behind the smoothed one; with no smoothing they coincide.
      const showFaintRaw = !showRawOnly && smoothing > 0;
      if (this.plot.series[1].show !== showFaintRaw) this.plot.setSeries(1, { show: showFaintRaw });
      this.plot.setData([episodes, values, smooth]);
    }

    // What it draws: [episodes, raw values, smoothed values].
    series() {
      return this.plot.data.map((column) => Array.from(column));
    }
  }

  // The mean weight of each feature over episodes, a faint band of mean ± std around it,
  // and a legend that names the features with their latest mean and std. Not smoothed:
  // each generation's distribution is drawn as it was.
  class WeightChart {
    constructor(container, features) {
      this.features = features;
      this.element = document.createElement("figure");
      this.element.className = "chart wide";
      this.element.dataset.metric = WEIGHTS_KEY;
      const caption = document.createElement("figcaption");
      caption.textContent = "Weights of the search distribution: mean ± std per feature";
      caption.title = `${WEIGHT_PREFIX}<feature> ± ${WEIGHT_STD_PREFIX}<feature>`;
      this.element.append(caption);
      container.append(this.element);
      // Per feature three series: the mean, then the band's top and bottom (unstroked).
      const series = [{ label: "episode" }];
      const bands = [];
      features.forEach((feature, i) => {
        const color = WEIGHT_COLORS[i % WEIGHT_COLORS.length];
        const edge = { stroke: "transparent", width: 0, points: { show: false } };
        series.push(
          { label: titleOf(feature), stroke: color, width: 2, points: { show: false } },
          { ...edge, label: `${titleOf(feature)} + std` },
          { ...edge, label: `${titleOf(feature)} − std` },
        );
        bands.push({ series: [3 * i + 2, 3 * i + 3], fill: `${color}1f` });
      });
      this.plot = new uPlot(
        {
          width: this.width(),
          height: WEIGHT_CHART_HEIGHT,
          legend: { show: false },
          cursor: { sync: { key: "episodes" }, drag: { x: true, y: false } },
          scales: { x: { time: false } },
          axes: [{ ...AXIS, size: 32 }, { ...AXIS, size: axisWidth, values: tickLabels }],
          series,
          bands,
        },
        [[], ...series.slice(1).map(() => [])],
        this.element,
      );
      this.legend = document.createElement("ul");
      this.legend.className = "legend weight-legend";
      this.values = features.map((feature, i) => {
        const item = document.createElement("li");
        item.dataset.feature = feature;
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.setProperty("--run-color", WEIGHT_COLORS[i % WEIGHT_COLORS.length]);
        const value = document.createElement("span");
        value.className = "weight-value";
        item.append(swatch, titleOf(feature), value);
        this.legend.append(item);
        return value;
      });
      this.element.append(this.legend);
    }

    width() {
      return Math.max(200, this.element.clientWidth || 400);
    }

    resize() {
      this.plot.setSize({ width: this.width(), height: WEIGHT_CHART_HEIGHT });
    }

    update(episodes, points) {
      const columns = [episodes];
      this.features.forEach((feature, i) => {
        const means = points.map((point) => numberOrNull(point[WEIGHT_PREFIX + feature]));
        const stds = points.map((point) => numberOrNull(point[WEIGHT_STD_PREFIX + feature]));
        const edge = (sign) =>
          means.map((mean, j) => (mean === null || stds[j] === null ? null : mean + sign * stds[j]));
        columns.push(means, edge(1), edge(-1));
        const last = means.findLastIndex((mean) => mean !== null);
        this.values[i].textContent = last < 0 ? "" : weightText(means[last], stds[last]);
      });
      this.plot.setData(columns);
    }

    // One feature's [episodes, means, means + std, means − std].
    series(feature) {
      const i = this.features.indexOf(feature);
      if (i < 0) return null;
      const columns = [0, 3 * i + 1, 3 * i + 2, 3 * i + 3].map((index) => this.plot.data[index]);
      return columns.map((column) => Array.from(column));
    }
  }

  function weightText(mean, std) {
    const digits = Math.abs(mean) >= 100 ? 1 : 2;
    const spread = std === null ? "" : ` ± ${std.toFixed(digits)}`;
    return `${mean.toFixed(digits)}${spread}`;
  }

  class ChartBoard {
    constructor(container, emptyNote, algorithm) {
      this.container = container;
      this.emptyNote = emptyNote;
      this.algorithm = algorithm;
      this.points = [];
      this.charts = new Map();
      this.smoothing = 0.6;
      this.rawOnly = false;
      this.pending = false;
      for (const spec of BASE_CHARTS) {
        if (!spec.algorithms || spec.algorithms.includes(algorithm)) this.addChart(spec);
      }
      new ResizeObserver(() => this.charts.forEach((chart) => chart.resize())).observe(container);
    }

    addChart(spec) {
      this.charts.set(spec.key, new Chart(this.container, spec));
    }

    // Charts for keys first seen in the data: loss on a cem run that reports one, the
    // titled ones, whatever extra figures the learner sends (the cross-entropy population
    // stats), and the weights of a cem run's search distribution, all in one chart.
    addChartsFor(points) {
      const fresh = new Set();
      const features = [];
      for (const point of points.slice(-5)) {
        for (const [key, value] of Object.entries(point)) {
          if (this.charts.has(key) || NOT_CHARTED.has(key) || numberOrNull(value) === null) continue;
          if (!isWeightKey(key)) fresh.add(key);
          else if (key.startsWith(WEIGHT_PREFIX)) features.push(key.slice(WEIGHT_PREFIX.length));
        }
      }
      for (const spec of [...BASE_CHARTS, ...TITLED_CHARTS]) {
        if (fresh.delete(spec.key)) this.addChart(spec);
      }
      for (const key of fresh) {
        const color = EXTRA_COLORS[this.charts.size % EXTRA_COLORS.length];
        this.addChart({ key, title: titleOf(key), color });
      }
      // A run's feature set never changes: the chart is made once, with the first ones seen.
      if (features.length && !this.charts.has(WEIGHTS_KEY)) {
        this.charts.set(WEIGHTS_KEY, new WeightChart(this.container, [...new Set(features)]));
      }
    }

    // A snapshot: the whole (possibly downsampled) history replaces what was drawn.
    replace(points) {
      this.points = points.slice();
      this.afterChange(points);
    }

    // Live points: only episodes after the last one drawn, so a point is never drawn twice.
    append(points) {
      const lastEpisode = this.points.length ? this.points[this.points.length - 1].episode : -Infinity;
      const fresh = points.filter((point) => point.episode > lastEpisode);
      if (!fresh.length) return;
      this.points.push(...fresh);
      while (this.points.length > MAX_POINTS) this.compact();
      this.afterChange(fresh);
    }

    compact() {
      const halved = [];
      for (let i = 0; i + 1 < this.points.length; i += 2) {
        halved.push(mergePair(this.points[i], this.points[i + 1]));
      }
      if (this.points.length % 2) halved.push(this.points[this.points.length - 1]);
      this.points = halved;
    }

    afterChange(newPoints) {
      this.addChartsFor(newPoints);
      this.emptyNote.hidden = this.points.length > 0;
      this.container.hidden = this.points.length === 0;
      this.scheduleDraw();
    }

    setSmoothing(weight) {
      this.smoothing = weight;
      this.scheduleDraw();
    }

    setRawOnly(rawOnly) {
      this.rawOnly = rawOnly;
      this.scheduleDraw();
    }

    // Draw at most once per animation frame, however many batches arrive.
    scheduleDraw() {
      if (this.pending) return;
      this.pending = true;
      window.requestAnimationFrame(() => {
        this.pending = false;
        this.draw();
      });
    }

    draw() {
      const episodes = this.points.map((point) => point.episode);
      for (const chart of this.charts.values()) {
        chart.update(episodes, this.points, this.smoothing, this.rawOnly);
      }
    }

    pointCount() {
      return this.points.length;
    }

    // What a chart draws: [episodes, raw values, smoothed values]; for a feature's weight
    // ("cem/weight/holes"), [episodes, means, means + std, means − std].
    seriesOf(key) {
      if (key.startsWith(WEIGHT_PREFIX)) {
        const weights = this.charts.get(WEIGHTS_KEY);
        return weights ? weights.series(key.slice(WEIGHT_PREFIX.length)) : null;
      }
      const chart = this.charts.get(key);
      return chart ? chart.series() : null;
    }
  }

  // --- evaluations: a point per evaluation, its 95% interval as a vertical bar ---

  const EVALUATION_HEIGHT = 230;
  const KEPT_COLOR = "#ffd54f";
  const POINT_BACKGROUND = "#181b24"; // the card's colour: a requested evaluation's point is hollow

  // Where an evaluation's point stands: its mean, or its lower bound when no game ended
  // (then the mean of the games, all cut short by the cap, lies below the bound).
  function evaluationValue(evaluation) {
    return evaluation.ci95_high === null ? evaluation.ci95_low : evaluation.mean_lines;
  }

  // The highest value an evaluation's bar needs; an open one leaves room for its arrow.
  function intervalTop(evaluation) {
    return evaluation.ci95_high === null ? evaluation.ci95_low * 1.25 : evaluation.ci95_high;
  }

  function drawInterval(ctx, mark, color, ratio) {
    const cap = 4 * ratio;
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = 1.5 * ratio;
    // Nothing bounds an open interval from above: dashed to the top, ending in an arrow.
    ctx.setLineDash(mark.open ? [4 * ratio, 3 * ratio] : []);
    ctx.beginPath();
    ctx.moveTo(mark.x, mark.low);
    ctx.lineTo(mark.x, mark.high);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.beginPath();
    ctx.moveTo(mark.x - cap, mark.low);
    ctx.lineTo(mark.x + cap, mark.low);
    if (!mark.open) {
      ctx.moveTo(mark.x - cap, mark.high);
      ctx.lineTo(mark.x + cap, mark.high);
    }
    ctx.stroke();
    if (mark.open) {
      ctx.beginPath();
      ctx.moveTo(mark.x, mark.high);
      ctx.lineTo(mark.x - 5 * ratio, mark.high + 8 * ratio);
      ctx.lineTo(mark.x + 5 * ratio, mark.high + 8 * ratio);
      ctx.closePath();
      ctx.fill();
    }
  }

  // The kept one is ringed and labelled, on the side of the point with room for the label.
  function drawPoint(ctx, mark, color, ratio, bbox) {
    ctx.lineWidth = 2 * ratio;
    ctx.strokeStyle = color;
    ctx.fillStyle = mark.kind === "requested" ? POINT_BACKGROUND : color;
    ctx.beginPath();
    ctx.arc(mark.x, mark.y, 4 * ratio, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
    if (!mark.kept) return;
    ctx.strokeStyle = ctx.fillStyle = KEPT_COLOR;
    ctx.beginPath();
    ctx.arc(mark.x, mark.y, 8 * ratio, 0, 2 * Math.PI);
    ctx.stroke();
    const onRight = mark.x < bbox.left + bbox.width / 2;
    ctx.font = `600 ${11 * ratio}px system-ui, sans-serif`;
    ctx.textAlign = onRight ? "left" : "right";
    ctx.textBaseline = "middle";
    ctx.fillText("kept", mark.x + (onRight ? 12 : -12) * ratio, mark.y);
  }

  // Several runs' evaluations on one uPlot chart. uPlot draws the axes and a faint line
  // through each run's periodic evaluations; the points and bars are drawn on its canvas
  // in its draw hook, since uPlot has no series type for intervals.
  class EvaluationChart {
    // runs: [{id, name, color}]. x: the evaluation field on the x-axis (total_pieces,
    // episode, wall_time); xAxis: uPlot options for that axis; describeX names an x
    // value in the readout ("12,000 placements").
    constructor(figure, runs, { x = "total_pieces", xAxis = {}, describeX = String } = {}) {
      this.figure = figure;
      this.runs = runs.map((run) => ({ ...run, evaluations: [], keptId: null, shown: true }));
      this.x = x;
      this.describeX = describeX;
      this.drawnMarks = [];
      this.readout = document.createElement("p");
      this.readout.className = "chart-readout";
      this.plot = new uPlot(
        {
          width: this.width(),
          height: EVALUATION_HEIGHT,
          legend: { show: false },
          cursor: { drag: { x: false, y: false }, points: { show: false } },
          scales: {
            x: { time: false, range: () => this.xRange() },
            y: { range: () => this.yRange() },
          },
          axes: [
            { ...AXIS, size: 32, values: tickLabels, ...xAxis },
            { ...AXIS, size: axisWidth, values: tickLabels },
          ],
          series: [
            { label: x },
            ...this.runs.map((run) => ({
              label: run.name,
              stroke: `${run.color}66`,
              width: 1,
              spanGaps: true,
              points: { show: false },
            })),
          ],
          hooks: {
            draw: [(plot) => this.drawMarks(plot)],
            setCursor: [(plot) => this.showReadout(plot)],
          },
        },
        [[], ...this.runs.map(() => [])],
        figure,
      );
      figure.append(this.readout);
      this.showReadout(this.plot);
      this.resizer = new ResizeObserver(() => {
        this.plot.setSize({ width: this.width(), height: EVALUATION_HEIGHT });
      });
      this.resizer.observe(figure);
    }

    width() {
      return Math.max(200, this.figure.clientWidth || 400);
    }

    // A run's evaluations (those with a score are drawn) and the id of its kept one.
    setEvaluations(runId, evaluations, keptId) {
      const run = this.runs.find((candidate) => candidate.id === runId);
      run.evaluations = evaluations
        .filter(ns.isScored)
        .sort((a, b) => a[this.x] - b[this.x] || a.id - b.id);
      run.keptId = keptId;
      this.update();
    }

    setShown(runId, shown) {
      this.runs.find((run) => run.id === runId).shown = shown;
      this.update();
    }

    shownRuns() {
      return this.runs.filter((run) => run.shown);
    }

    shownEvaluations() {
      return this.shownRuns().flatMap((run) => run.evaluations);
    }

    // One x column for every run; each run's line passes through its periodic evaluations.
    update() {
      const xs = [...new Set(this.shownEvaluations().map((evaluation) => evaluation[this.x]))];
      xs.sort((a, b) => a - b);
      const columns = this.runs.map((run) => {
        const periodic = run.evaluations.filter((evaluation) => evaluation.kind === "periodic");
        const values = new Map(periodic.map((e) => [e[this.x], evaluationValue(e)]));
        return xs.map((x) => (values.has(x) ? values.get(x) : null));
      });
      this.plot.batch(() => {
        this.runs.forEach((run, index) => {
          const series = index + 1;
          if (this.plot.series[series].show !== run.shown) this.plot.setSeries(series, { show: run.shown });
        });
        this.plot.setData([xs, ...columns]);
      });
    }

    // Both axes start at 0: training starts there, and lines per game cannot go below it.
    xRange() {
      const xs = this.shownEvaluations().map((evaluation) => evaluation[this.x]);
      return [0, Math.max(0, ...xs) * 1.04 || 1];
    }

    yRange() {
      return [0, Math.max(0, ...this.shownEvaluations().map(intervalTop)) * 1.08 || 1];
    }

    drawMarks(plot) {
      const ratio = uPlot.pxRatio;
      this.drawnMarks = [];
      for (const run of this.shownRuns()) {
        for (const evaluation of run.evaluations) {
          const mark = this.markOf(plot, run, evaluation);
          drawInterval(plot.ctx, mark, run.color, ratio);
          drawPoint(plot.ctx, mark, run.color, ratio, plot.bbox);
          this.drawnMarks.push(mark);
        }
      }
    }

    // Where an evaluation is drawn, in canvas pixels (y grows downwards).
    markOf(plot, run, evaluation) {
      const open = evaluation.ci95_high === null;
      return {
        run: run.id,
        id: evaluation.id,
        kind: evaluation.kind,
        kept: evaluation.id === run.keptId,
        open,
        x: plot.valToPos(evaluation[this.x], "x", true),
        y: plot.valToPos(evaluationValue(evaluation), "y", true),
        low: plot.valToPos(evaluation.ci95_low, "y", true),
        high: open ? plot.bbox.top : plot.valToPos(evaluation.ci95_high, "y", true),
        top: plot.bbox.top,
      };
    }

    // The figures of the evaluations under the cursor, in the words every page uses.
    showReadout(plot) {
      const index = plot.cursor.idx;
      if (index === null || index === undefined || !plot.data[0].length) {
        this.readout.textContent = "Point at an evaluation to read its interval.";
        return;
      }
      const x = plot.data[0][index];
      const named = this.runs.length > 1;
      const lines = this.shownRuns().flatMap((run) =>
        run.evaluations
          .filter((evaluation) => evaluation[this.x] === x)
          .map((evaluation) => {
            const notes = [
              evaluation.kind === "requested" ? "requested, on the evaluation seeds" : "",
              evaluation.id === run.keptId ? "the kept policy" : "",
            ].filter(Boolean);
            const who = named ? `${run.name}, ` : "";
            const note = notes.length ? ` · ${notes.join(" · ")}` : "";
            return `${who}${this.describeX(x)}: ${ns.scoreText(evaluation)}${note}`;
          }),
      );
      this.readout.replaceChildren(
        ...lines.map((line) => Object.assign(document.createElement("span"), { textContent: line })),
      );
    }

    // What the last draw put on the canvas: [{run, id, kind, kept, open, x, y, low, high, top}].
    marks() {
      return this.drawnMarks.map((mark) => ({ ...mark }));
    }

    destroy() {
      this.resizer.disconnect();
      this.plot.destroy();
      this.readout.remove();
    }
  }

  ns.ChartBoard = ChartBoard;
  ns.debiasedEma = debiasedEma;
  ns.EvaluationChart = EvaluationChart;
})(window.TetrisTrainer);
