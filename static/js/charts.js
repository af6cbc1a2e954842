// Live learning curves with uPlot: one chart per metric, a TensorBoard-style smoothing
// slider (debiased exponential moving average) and a raw toggle.
"use strict";

window.TetrisTrainer = window.TetrisTrainer || {};

(function (ns) {
  // Keys of every metric point that are not curves of their own.
  const NOT_CHARTED = new Set([
    "episode", "pieces", "reward", "placements_per_second", "total_pieces", "wall_time",
    "lines_min", "lines_max",
  ]);
  const BASE_CHARTS = [
    { key: "lines", title: "Lines per game", color: "#4fc3f7" },
    { key: "score", title: "Score", color: "#ffd54f" },
    { key: "loss", title: "Loss", color: "#ef5350", algorithms: ["dqn"] },
    { key: "epsilon", title: "Epsilon", color: "#ab47bc", algorithms: ["dqn"] },
  ];
  const EXTRA_COLORS = ["#66bb6a", "#ff9100", "#26c6da", "#ec407a", "#9ccc65", "#7e57c2"];
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

    setData(episodes, raw, smoothing, showRawOnly) {
      const values = raw.map(numberOrNull);
      const smooth = showRawOnly || smoothing === 0 ? values : debiasedEma(values, smoothing);
      // The faint raw line sits behind the smoothed one; with no smoothing they coincide.
      const showFaintRaw = !showRawOnly && smoothing > 0;
      if (this.plot.series[1].show !== showFaintRaw) this.plot.setSeries(1, { show: showFaintRaw });
      this.plot.setData([episodes, values, smooth]);
    }
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

    // Charts for keys first seen in the data: loss on a cem run that reports one, and
    // whatever extra figures the learner sends (the cross-entropy population stats).
    addChartsFor(points) {
      for (const point of points.slice(-5)) {
        for (const [key, value] of Object.entries(point)) {
          if (this.charts.has(key) || NOT_CHARTED.has(key) || numberOrNull(value) === null) continue;
          const base = BASE_CHARTS.find((spec) => spec.key === key);
          const color = EXTRA_COLORS[this.charts.size % EXTRA_COLORS.length];
          this.addChart(base || { key, title: titleOf(key), color });
        }
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
        const raw = this.points.map((point) => point[chart.key]);
        chart.setData(episodes, raw, this.smoothing, this.rawOnly);
      }
    }

    pointCount() {
      return this.points.length;
    }

    // What a chart draws: [episodes, raw values, smoothed values].
    seriesOf(key) {
      const chart = this.charts.get(key);
      return chart ? chart.plot.data.map((column) => Array.from(column)) : null;
    }
  }

  ns.ChartBoard = ChartBoard;
  ns.debiasedEma = debiasedEma;
})(window.TetrisTrainer);
