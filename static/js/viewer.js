// The live viewer of one run: a WebSocket that reconnects by itself and re-syncs from
// each new snapshot, feeding the board, the figures, the charts, the evaluations, the
// lists of what to watch, and the controls.
"use strict";

(function (ns) {
  const page = JSON.parse(document.getElementById("viewer-page").textContent);
  const $ = (id) => document.getElementById(id);

  const board = new ns.BoardView($("board"), $("next-piece"), page.width, page.height);
  const overlay = ns.OptionsOverlay.onPage(board, (on) => live.send({ command: "overlay", on }));
  const charts = new ns.ChartBoard($("charts"), $("charts-empty"), page.algorithm);
  const evaluationChart = new ns.EvaluationChart(
    $("evaluations-chart"),
    [{ id: page.run_id, name: "this run", color: "#4fc3f7" }],
    { describeX: (pieces) => `${formatNumber(pieces)} placements` },
  );

  const ACTIVE = ["queued", "running"];
  const RESUMABLE = ["stopped", "failed"];
  const RECENT_EPISODES = 100;
  const BEST_GAME_KINDS = ["train", "eval"];
  const AGE_UNITS = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  const RELATIVE_TIME = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
  const KEPT_CHECKPOINT = "best"; // what the Evaluate button scores: the kept policy
  const FIELD_NAMES = { piece_cap: "piece cap" }; // the API's field names, as the page words them

  let run = null;
  let recentLines = [];
  let recentFromHistory = false;
  let lastFrame = null;
  let framePending = null;
  let commandPending = false;
  let evaluationPending = false;
  let evaluations = new Map(); // by id: an update of an evaluation replaces it

  // --- small formatting helpers ---

  function formatNumber(value, digits = 0) {
    if (value === null || value === undefined || !Number.isFinite(Number(value))) return "–";
    return Number(value).toLocaleString("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
  }

  function formatDuration(seconds) {
    const total = Math.floor(seconds || 0);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    return `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
  }

  function setText(id, text) {
    $(id).textContent = text;
  }

  // "3 minutes ago", from an ISO time.
  function timeAgo(iso) {
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    const [unit, size] = AGE_UNITS.find(([, length]) => seconds >= length) || AGE_UNITS.at(-1);
    return RELATIVE_TIME.format(-Math.floor(seconds / size), unit);
  }

  // Each [data-field] element of an item gets its value's text.
  function fillFields(item, values) {
    for (const element of item.querySelectorAll("[data-field]")) {
      element.textContent = values[element.dataset.field];
    }
  }

  // --- connection indicator ---

  function setConnection(state, label) {
    const indicator = $("connection");
    indicator.dataset.state = state;
    indicator.querySelector(".label").textContent = label || state;
    renderControls();
  }

  function isConnected() {
    return live.isOpen() && run !== null;
  }

  // --- run status, error and controls ---

  function setStatus(status, detail) {
    run.status = status;
    const badge = $("run-status");
    badge.textContent = status;
    badge.className = `badge status-${status}`;
    if (status === "failed") {
      run.error = detail || run.error;
    } else if (status === "stopped" && detail) {
      run.error = detail; // how it stopped, when unusual (its worker was killed)
    } else {
      run.error = "";
    }
    $("board-waiting").textContent =
      ACTIVE.includes(status) ? "waiting for the agent…" : `no live board: the run is ${status}`;
    overlay.setWaiting(
      ACTIVE.includes(status) ? null : `the options come with the live board: the run is ${status}`,
    );
    const errorBox = $("run-error");
    errorBox.hidden = !run.error;
    errorBox.querySelector(".message").textContent = run.error;
    errorBox.querySelector("strong").textContent =
      status === "failed" ? "The run failed:" : "Note:";
    commandPending = false;
    renderControls();
  }

  function renderControls() {
    const startButton = $("start-button");
    const stopButton = $("stop-button");
    if (run === null) {
      startButton.hidden = stopButton.hidden = true;
      return;
    }
    const stopping = run.status === "stopping";
    stopButton.hidden = !(run.can_stop && (ACTIVE.includes(run.status) || stopping));
    stopButton.disabled = stopping || commandPending || !isConnected();
    stopButton.textContent = stopping ? "Stopping…" : "Stop";
    startButton.hidden = !(run.can_control && RESUMABLE.includes(run.status));
    startButton.disabled = commandPending || !isConnected();
  }

  // The owner's switch between private and public; the API has the last word.
  function renderVisibility() {
    $("visibility-form").hidden = !(run && run.can_control);
    if (run === null) return;
    $("visibility-public").checked = run.visibility === "public";
    $("run-visibility").textContent = run.visibility;
  }

  async function setVisibility(visibility) {
    $("visibility-public").disabled = true;
    try {
      const body = await sendJson(page.run_url, "PATCH", { visibility });
      run.visibility = body.visibility;
    } catch (error) {
      showNotice(`Could not change who may watch the run: ${error.message}`);
    } finally {
      $("visibility-public").disabled = false;
      renderVisibility();
    }
  }

  // A JSON request to the API with the page's CSRF token. Answers the body, or throws an
  // Error that says in words what went wrong.
  async function sendJson(url, method, payload) {
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRFToken": document.querySelector("[name=csrfmiddlewaretoken]").value,
        },
        body: JSON.stringify(payload),
      });
    } catch {
      throw new Error("the server could not be reached");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(errorWords(response, body));
    return body;
  }

  // The API answers {"error": message}, or {"errors": {field: message}} for bad input.
  function errorWords(response, body) {
    if (body.error) return body.error;
    const errors = Object.entries(body.errors || {});
    if (!errors.length) return `the server answered ${response.status}`;
    return errors.map(([field, message]) => `${FIELD_NAMES[field] || field}: ${message}`).join("; ");
  }

  function sendCommand(command) {
    if (!isConnected()) return;
    commandPending = true;
    renderControls();
    live.send({ command });
  }

  function showNotice(text) {
    const notice = $("notice");
    notice.textContent = text;
    notice.hidden = !text;
  }

  // Status messages come from the web process and from the worker, and two of them can
  // arrive out of order (a resume's "queued" after the worker's "running"); the stored
  // run has the last word. Only the newest check's answer counts.
  let statusCheck = 0;

  async function confirmStatus() {
    const check = ++statusCheck;
    try {
      const response = await fetch(page.run_url, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const stored = await response.json();
      if (check === statusCheck && run !== null && stored.status !== run.status) {
        setStatus(stored.status, stored.error);
      }
    } catch (error) {
      // Offline: the next snapshot brings the status anyway.
    }
  }

  // --- figures ---

  function renderSummary() {
    setText("stat-episodes", formatNumber(run.episodes));
    setText("stat-total-pieces", formatNumber(run.total_pieces));
    setText("stat-best-lines", formatNumber(run.best_lines));
    setText("stat-recent-lines", formatNumber(recentMean(), 1));
    setText("stat-wall-time", formatDuration(run.wall_time));
    setText("stat-speed", formatNumber(run.placements_per_second));
  }

  // The run's stored mean until the browser has seen enough episodes to compute it.
  function recentMean() {
    const complete = recentFromHistory || recentLines.length >= RECENT_EPISODES;
    if (!complete || !recentLines.length) return run.recent_mean_lines;
    return recentLines.reduce((sum, lines) => sum + lines, 0) / recentLines.length;
  }

  function rememberLines(points) {
    for (const point of points) {
      if (typeof point.lines === "number") recentLines.push(point.lines);
    }
    recentLines = recentLines.slice(-RECENT_EPISODES);
  }

  // --- evaluations and the kept policy ---

  // A periodic evaluation marked best chose the checkpoint kept as `best`: the newest such
  // one is the run's score (the server's run.best_evaluation). Ids grow with time, so an
  // older one relayed late never takes over.
  function becomesKept(evaluation) {
    const kept = run.best_evaluation;
    return evaluation.kind === "periodic" && evaluation.best && (!kept || evaluation.id >= kept.id);
  }

  function renderKept() {
    setText("stat-kept", ns.scoreText(run.best_evaluation));
  }

  function renderEvaluations() {
    const all = Array.from(evaluations.values());
    const scored = all.filter(ns.isScored);
    const kept = run.best_evaluation;
    evaluationChart.setEvaluations(page.run_id, scored, kept ? kept.id : null);
    $("evaluations-empty").hidden = scored.length > 0;
    $("evaluations-shown").hidden = scored.length === 0;
    const running = all.filter((evaluation) => evaluation.status === "running");
    setText("evaluations-progress", running.map(progressText).join(" · "));
    const heldOut = keptOnHeldOutGames(all);
    $("held-out").hidden = heldOut === null;
    setText("held-out-score", ns.scoreText(heldOut));
  }

  // The kept policy's unbiased score: the newest finished requested evaluation of the
  // `best` checkpoint. That checkpoint was taken at the placements of the periodic
  // evaluation that chose it, so a policy taken there is the kept one.
  function keptOnHeldOutGames(all) {
    const kept = run.best_evaluation;
    if (!kept) return null;
    const ofKept = all.filter(
      (evaluation) =>
        evaluation.kind === "requested" &&
        evaluation.status === "done" &&
        evaluation.total_pieces === kept.total_pieces,
    );
    return ofKept.sort((a, b) => a.id - b.id).at(-1) || null;
  }

  // Only the owner (or staff) may spend the evaluate workers' time.
  function renderEvaluateForm() {
    $("evaluate-form").hidden = !(run && run.can_control);
    const button = $("evaluate-button");
    button.disabled = evaluationPending;
    button.textContent = evaluationPending ? "Starting…" : "Evaluate";
  }

  // The evaluation comes back at once, running; the socket then brings its progress and
  // its score like any other evaluation's.
  async function startEvaluation() {
    evaluationPending = true;
    renderEvaluateForm();
    showNotice("");
    try {
      const evaluation = await sendJson($("evaluate-form").action, "POST", {
        games: $("evaluate-games").valueAsNumber, // NaN (an empty field) is sent as null
        piece_cap: $("evaluate-piece-cap").valueAsNumber,
        checkpoint: KEPT_CHECKPOINT,
      });
      // The socket's copy may have come first, and be further along: it stands.
      if (run !== null && !evaluations.has(evaluation.id)) {
        evaluations.set(evaluation.id, evaluation);
        renderEvaluations();
      }
    } catch (error) {
      showNotice(`Could not start the evaluation: ${error.message}`);
    } finally {
      evaluationPending = false;
      renderEvaluateForm();
    }
  }

  // A requested evaluation reports its progress as its games are played.
  function progressText(evaluation) {
    const games = `${formatNumber(evaluation.games_done)} of ${formatNumber(evaluation.games)} games`;
    return `evaluating the policy of episode ${formatNumber(evaluation.episode)}: ${games}`;
  }

  // --- what to watch: checkpoints and best games ---

  // The best-evaluated checkpoint first (the one worth watching), then the newest ones.
  function renderCheckpoints(checkpoints) {
    const best = checkpoints.filter(isBest);
    const others = checkpoints.filter((checkpoint) => !isBest(checkpoint));
    $("checkpoint-list").replaceChildren(...[...best, ...others].map(checkpointItem));
    $("no-checkpoints").hidden = checkpoints.length > 0;
  }

  function isBest(checkpoint) {
    return checkpoint.kind === "best";
  }

  function checkpointItem(checkpoint) {
    const item = $("checkpoint-item").content.firstElementChild.cloneNode(true);
    item.dataset.checkpointId = checkpoint.id;
    item.dataset.kind = checkpoint.kind;
    item.querySelector("a").href = `${page.play_url}?checkpoint=${checkpoint.id}`;
    item.querySelector(".tag.best").hidden = !isBest(checkpoint);
    fillFields(item, {
      episode: formatNumber(checkpoint.episode),
      total_pieces: formatNumber(checkpoint.total_pieces),
      age: timeAgo(checkpoint.created_at),
    });
    return item;
  }

  function renderBestGames(bestGames) {
    for (const kind of BEST_GAME_KINDS) {
      const item = $("best-games").querySelector(`[data-kind="${kind}"]`);
      const game = bestGames[kind];
      item.querySelector(".found").hidden = !game;
      item.querySelector(".none").hidden = Boolean(game);
      if (game) {
        fillFields(item, {
          lines: formatNumber(game.lines),
          pieces: formatNumber(game.pieces),
          episode: formatNumber(game.episode),
        });
      }
    }
  }

  function absorbMetrics(points) {
    const last = points[points.length - 1];
    run.episodes = Math.max(run.episodes, last.episode);
    run.total_pieces = Math.max(run.total_pieces, last.total_pieces || 0);
    run.wall_time = Math.max(run.wall_time, last.wall_time || 0);
    run.placements_per_second = last.placements_per_second;
    for (const point of points) run.best_lines = Math.max(run.best_lines, point.lines || 0);
  }

  // --- board frames: drawn at most once per animation frame, latest wins ---

  function showFrame(frame) {
    if (lastFrame && frame.episode === lastFrame.episode && frame.t > lastFrame.t) {
      const rate = (frame.pieces - lastFrame.pieces) / (frame.t - lastFrame.t);
      setText("stat-pps", formatNumber(rate, 0));
    }
    lastFrame = frame;
    if (framePending === null) window.requestAnimationFrame(drawFrame);
    framePending = frame;
  }

  function drawFrame() {
    const frame = framePending;
    framePending = null;
    overlay.show(frame);
    board.draw(frame.board, frame.next);
    $("board-wrap").classList.add("has-frame");
    setText("stat-episode", formatNumber(frame.episode));
    setText("stat-lines", formatNumber(frame.lines));
    setText("stat-score", formatNumber(frame.score));
    setText("stat-pieces", formatNumber(frame.pieces));
  }

  // --- messages ---

  const handlers = {
    snapshot(message) {
      run = message.run;
      run.placements_per_second = null;
      const points = message.metrics.points;
      charts.replace(points);
      recentFromHistory = points.length === message.metrics.total;
      recentLines = [];
      if (recentFromHistory) rememberLines(points);
      if (points.length) run.placements_per_second = points[points.length - 1].placements_per_second;
      setStatus(run.status, run.error);
      renderVisibility();
      renderEvaluateForm();
      renderSummary();
      evaluations = new Map(message.evaluations.map((evaluation) => [evaluation.id, evaluation]));
      renderEvaluations();
      renderKept();
      renderCheckpoints(message.checkpoints);
      renderBestGames(message.best_games);
      lastFrame = null;
      if (message.frame) showFrame(message.frame);
      overlay.announce(); // a new socket: it sends options only once asked
    },
    frame(message) {
      showFrame(message);
    },
    metrics(message) {
      if (run === null || !message.points.length) return;
      charts.append(message.points);
      rememberLines(message.points);
      absorbMetrics(message.points);
      renderSummary();
    },
    evaluation(message) {
      if (run === null) return;
      const evaluation = message.evaluation;
      const before = evaluations.get(evaluation.id);
      if (evaluation.status === "failed" && before && before.status === "running") {
        const policy = `the policy of episode ${formatNumber(evaluation.episode)}`;
        showNotice(`The evaluation of ${policy} failed: its checkpoint is gone or unreadable.`);
      }
      evaluations.set(evaluation.id, evaluation);
      if (becomesKept(evaluation)) run.best_evaluation = evaluation;
      renderEvaluations();
      renderKept();
    },
    checkpoints(message) {
      renderCheckpoints(message.checkpoints);
    },
    best_games(message) {
      renderBestGames(message.best_games);
    },
    status(message) {
      if (run === null) return;
      setStatus(message.status, message.detail);
      confirmStatus();
    },
    error(message) {
      commandPending = false;
      renderControls();
      showNotice(message.error);
    },
  };

  // --- the socket: it reconnects by itself, and each snapshot re-syncs the page ---

  const live = new ns.LiveSocket({
    path: page.socket_path,
    handlers,
    loginUrl: page.login_url,
    onState(state, label, waitMs) {
      const waiting = `reconnecting in ${(waitMs / 1000).toFixed(1)} s`;
      setConnection(state, state === "reconnecting" ? waiting : label);
    },
  });

  // --- wiring ---

  $("stop-button").addEventListener("click", () => sendCommand("stop"));
  $("start-button").addEventListener("click", () => sendCommand("start"));
  $("notice").addEventListener("click", () => showNotice(""));
  $("evaluate-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!evaluationPending) startEvaluation();
  });
  $("visibility-public").addEventListener("change", (event) => {
    setVisibility(event.target.checked ? "public" : "private");
  });
  const smoothing = $("smoothing");
  const smoothingValue = $("smoothing-value");
  smoothing.addEventListener("input", () => {
    const weight = Number(smoothing.value);
    smoothingValue.textContent = weight.toFixed(2);
    charts.setSmoothing(weight);
  });
  $("raw").addEventListener("change", (event) => {
    smoothing.disabled = event.target.checked;
    charts.setRawOnly(event.target.checked);
  });
  window.addEventListener("online", () => live.reconnectNow());

  // Tests and the console can read the viewer's state.
  ns.viewer = {
    chartPoints: () => charts.pointCount(),
    chartSeries: (key) => charts.seriesOf(key),
    connected: isConnected,
    // The evaluation chart's points and bars as last drawn (canvas pixels).
    evaluationMarks: () => evaluationChart.marks(),
    // The agent's options drawn over the board, as received: {on, piece, options, pieces}.
    overlay: () => overlay.state(),
    // The table of the top five beside the board: [{rotation, column, value}].
    overlayRows: () => overlay.rows(),
    status: () => (run ? run.status : null),
  };

  charts.setSmoothing(Number(smoothing.value));
  live.connect();
})(window.TetrisTrainer);
