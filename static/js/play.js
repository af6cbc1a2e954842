// The play page: a policy's game at human speed, with speed, pause, step and restart.
// Two sources feed the same board and controls: "live", a game that a worker plays and
// streams over the play's WebSocket (the commands go back over it), and "replay", a
// recorded game (seed + placements) replayed here with tetris_rules.js. A side-by-side
// play (`page.versus`) has a second board, fed each frame's `rival`.
"use strict";

(function (ns) {
  const page = JSON.parse(document.getElementById("play-page").textContent);
  const $ = (id) => document.getElementById(id);

  const board = new ns.BoardView($("board"), $("next-piece"), page.width, page.height);
  const speed = $("speed");
  const ENDED = ["ended", "failed", "finished"];
  const NO_POLICY =
    "this game's policy is not kept (a dqn network changes while it trains): " +
    "play a checkpoint to see its options";
  const DISAGREEMENT_OUTLINE = "#ffd54f";
  const DISAGREEMENT_DASH = [7, 4];

  const view = { state: "", paused: false, pps: page.pps, frame: null, frames: 0 };
  let framePending = null;
  let source = null; // set once the live or replay source is made, below
  const overlay = ns.OptionsOverlay.onPage(board, (on) => source.overlay(on));
  const versus = page.versus ? sideBySide() : null;

  function formatNumber(value) {
    if (value === null || value === undefined || !Number.isFinite(Number(value))) return "–";
    return Number(value).toLocaleString("en-US");
  }

  function showNotice(text) {
    $("notice").textContent = text;
    $("notice").hidden = !text;
  }

  // --- the board: drawn at most once per animation frame, the latest frame wins ---

  function showFrame(frame) {
    view.frame = frame;
    view.frames += 1;
    if (framePending === null) window.requestAnimationFrame(drawFrame);
    framePending = frame;
  }

  function drawFrame() {
    const frame = framePending;
    framePending = null;
    if (versus !== null) versus.draw(frame); // first: it sets the marks on both boards
    overlay.show(frame, frame.recorded || null);
    board.draw(frame.board, frame.next);
    $("board-wrap").classList.add("has-frame");
    $("stat-episode").textContent = formatNumber(frame.episode);
    showFigures(frame, "");
    $("stat-seed").textContent = String(frame.seed);
  }

  // A board's lines, score and pieces (`suffix`: "-rival" for the right board's).
  function showFigures(shown, suffix) {
    for (const name of ["lines", "score", "pieces"]) {
      $(`stat-${name}${suffix}`).textContent = formatNumber(shown[name]);
    }
  }

  // --- side by side: the right board, and the first piece the two would place apart ---

  // The right board draws each frame's `rival` with its own options; each board outlines
  // where its side puts the disagreeing piece while it shows that moment, overlay or not.
  function sideBySide() {
    const [leftLabel, rightLabel] = page.versus;
    const rivalBoard = new ns.BoardView(
      $("board-rival"),
      $("next-piece-rival"),
      page.width,
      page.height,
    );
    // The left overlay tells the source for both: one command turns both boards' on.
    const rivalOverlay = ns.OptionsOverlay.onPage(rivalBoard, () => {}, "-rival");
    const marks = [board, rivalBoard].map((boardView) => {
      const mark = { cells: null };
      boardView.addLayer(() => {
        if (mark.cells) boardView.outline(mark.cells, DISAGREEMENT_OUTLINE, DISAGREEMENT_DASH);
      });
      return mark;
    });

    // Where side `side` (0 left, 1 right) puts the disagreeing piece, while `shown` (its
    // board's frame) is the moment before it is placed; else null.
    function disagreeingCells(shown, disagreement, side) {
      if (!disagreement || !shown.piece || shown.pieces !== disagreement.placement - 1) {
        return null;
      }
      const { rotation, column } = disagreement.choices[side];
      const { width, height } = page;
      return ns.TetrisRules.landingCells(
        shown.board,
        width,
        height,
        disagreement.piece,
        rotation,
        column,
      );
    }

    function describe(frame, disagreement) {
      if (!disagreement) {
        const placed = `${formatNumber(frame.pieces)} placement${frame.pieces === 1 ? "" : "s"}`;
        return `No disagreement yet: they agree so far (${placed})`;
      }
      const [left, right] = disagreement.choices;
      return (
        `First disagreement at placement ${disagreement.placement} ` +
        `(the ${disagreement.piece} piece): ${leftLabel} puts it at rotation ` +
        `${left.rotation}, column ${left.column}; ${rightLabel} at rotation ` +
        `${right.rotation}, column ${right.column}`
      );
    }

    return {
      // Call it before the left board draws `frame`.
      draw(frame) {
        const disagreement = frame.disagreement || null;
        const banner = $("disagreement");
        banner.textContent = describe(frame, disagreement);
        marks[0].cells = disagreeingCells(frame, disagreement, 0);
        $("side-over").hidden = Boolean(frame.piece); // a game over has no piece to place
        const rival = frame.rival || null;
        if (rival !== null) {
          marks[1].cells = disagreeingCells(rival, disagreement, 1);
          rivalOverlay.show(rival);
          rivalBoard.draw(rival.board, rival.next);
          $("board-wrap-rival").classList.add("has-frame");
          showFigures(rival, "-rival");
          $("side-over-rival").hidden = Boolean(rival.piece);
        }
        const now = marks.some((mark) => mark.cells !== null);
        banner.dataset.state = disagreement ? (now ? "now" : "past") : "agree";
      },
      overlay: () => rivalOverlay.state(),
    };
  }

  // --- the state badge and the controls ---

  function setState(state, detail, pps, paused) {
    view.state = state;
    if (typeof paused === "boolean") view.paused = paused;
    if (typeof pps === "number" && document.activeElement !== speed) {
      view.pps = pps;
      speed.value = pps;
      $("speed-value").textContent = pps;
    }
    const badge = $("play-state");
    badge.textContent = state;
    badge.dataset.state = state;
    $("play-detail").textContent = detail || "";
    renderControls();
  }

  function renderControls() {
    const ready = source !== null && source.ready();
    const usable = ready && !ENDED.includes(view.state);
    $("pause-button").disabled = !usable;
    $("pause-button").textContent = view.paused ? "Play" : "Pause";
    $("step-button").disabled = !usable;
    $("restart-button").disabled = !ready || (page.mode === "live" && ENDED.includes(view.state));
  }

  // --- live: a game played by a worker, streamed over the play's socket ---

  function liveSource() {
    function setConnection(state, label) {
      const indicator = $("connection");
      indicator.dataset.state = state;
      indicator.querySelector(".label").textContent = label;
    }

    const handlers = {
      snapshot(message) {
        const status = message.status || { state: "queued", detail: "waiting for a worker" };
        setState(status.state, status.detail, status.pps, status.paused);
        if (message.frame) showFrame(message.frame);
        overlay.announce(); // a new socket: it sends options only once asked
      },
      frame(message) {
        showFrame(message);
      },
      status(message) {
        setState(message.state, message.detail, message.pps, message.paused);
        if (message.state === "ended" || message.state === "failed") {
          for (const waiting of document.querySelectorAll(".board-waiting")) {
            waiting.textContent = "the play ended: reload the page to play again";
          }
        }
      },
      error(message) {
        showNotice(message.error);
      },
    };

    // Back within a few seconds, the viewer finds the same game still going.
    const live = new ns.LiveSocket({
      path: page.socket_path,
      handlers,
      loginUrl: page.login_url,
      onState: setConnection,
      onOpen: renderControls,
      onClose: renderControls,
      onForbidden() {
        showNotice("This play is gone or no longer yours to watch: reload the page for a new one.");
      },
    });

    function send(command, extra) {
      live.send({ command, ...extra });
    }

    live.connect();
    return {
      ready: () => live.isOpen(),
      speed: (pps) => send("speed", { pps }),
      pause: () => send("pause"),
      resume: () => send("resume"),
      step: () => send("step"),
      restart: () => send("restart"),
      overlay: (on) => send("overlay", { on }),
    };
  }

  // --- replay: a recorded game, replayed in this page from its seed and placements ---

  // The options of a replayed game are weighed here, when its policy is a linear one kept
  // with the record ({kind: "linear", feature_set, weights}).
  function replaySource() {
    const record = page.replay;
    const actions = Uint8Array.from(window.atob(record.actions), (ch) => ch.charCodeAt(0));
    const policy = record.policy && record.policy.kind === "linear" ? record.policy : null;
    const { PIECE_NAMES, placementOptions } = ns.TetrisRules;
    let game = null;
    let timer = null;

    // A replay's frame, like a live one; with the overlay on, also the options of the
    // piece to place now and `recorded`, the placement the record makes with it.
    function frame() {
      const shown = {
        episode: record.episode,
        seed: record.seed,
        board: game.boardString(),
        next: PIECE_NAMES[game.next],
        piece: game.gameOver ? null : PIECE_NAMES[game.current],
        lines: game.lines,
        score: game.score,
        pieces: game.pieces,
      };
      if (policy !== null && overlay.isOn()) {
        shown.options = placementOptions(game, policy.weights, policy.feature_set);
        if (!finished()) shown.recorded = placementOf(actions[game.pieces]);
      }
      return shown;
    }

    function placementOf(action) {
      return { rotation: Math.floor(action / record.width), column: action % record.width };
    }

    function start() {
      game = new ns.TetrisRules.Game(record.width, record.height, record.randomizer, record.seed);
      showFrame(frame());
      report();
    }

    function finished() {
      return game.pieces >= actions.length;
    }

    function report() {
      if (!finished()) {
        const detail = `placement ${formatNumber(game.pieces)} of ${formatNumber(actions.length)}`;
        setState(view.paused ? "paused" : "playing", detail);
        return;
      }
      const whole = actions.length === record.pieces;
      if (whole && (game.lines !== record.lines || game.score !== record.score)) {
        setState("failed", `the replay made ${game.lines} lines, the record says ${record.lines}`);
        return;
      }
      const shown = whole ? "the whole game" : `its first ${formatNumber(actions.length)} placements`;
      setState("finished", `replayed ${shown}: ${formatNumber(game.lines)} lines`);
    }

    function placeOne() {
      if (finished()) return;
      game.step(actions[game.pieces]);
      showFrame(frame());
    }

    function tick() {
      timer = null;
      if (view.paused || finished()) return;
      placeOne();
      report();
      schedule();
    }

    function schedule() {
      window.clearTimeout(timer);
      timer = window.setTimeout(tick, 1000 / view.pps);
    }

    view.paused = true;
    if (policy === null) overlay.disable(NO_POLICY);
    start();
    return {
      ready: () => true,
      speed: (pps) => {
        view.pps = pps;
        if (!view.paused) schedule();
      },
      pause: () => {
        view.paused = true;
        window.clearTimeout(timer);
        report();
      },
      resume: () => {
        view.paused = false;
        report();
        schedule();
      },
      step: () => {
        view.paused = true;
        window.clearTimeout(timer);
        placeOne();
        report();
      },
      restart: () => {
        window.clearTimeout(timer);
        start();
        if (!view.paused) schedule();
      },
      overlay: () => showFrame(frame()), // the options of the board shown, or none
    };
  }

  // --- wiring ---

  source = page.mode === "live" ? liveSource() : replaySource();

  speed.addEventListener("input", () => {
    $("speed-value").textContent = speed.value;
  });
  speed.addEventListener("change", () => {
    view.pps = Number(speed.value);
    source.speed(view.pps);
  });
  $("pause-button").addEventListener("click", () => (view.paused ? source.resume() : source.pause()));
  $("step-button").addEventListener("click", () => source.step());
  $("restart-button").addEventListener("click", () => source.restart());
  $("notice").addEventListener("click", () => showNotice(""));
  renderControls();

  // Tests and the console can read the player's state.
  ns.player = {
    board: () => (view.frame ? view.frame.board : null),
    frames: () => view.frames,
    lines: () => (view.frame ? view.frame.lines : null),
    paused: () => view.paused,
    pieces: () => (view.frame ? view.frame.pieces : null),
    pps: () => view.pps,
    state: () => view.state,
    // The agent's options drawn over the board, as received (live) or weighed here
    // (replay): {on, piece, options, pieces}.
    overlay: () => overlay.state(),
    // The table of the top five beside the board: [{rotation, column, value}].
    overlayRows: () => overlay.rows(),
    // Side by side (null otherwise): the right board's last frame as received, the last
    // frame's first disagreement, and the right board's options as overlay() has the left's.
    rival: () => (view.frame && view.frame.rival ? view.frame.rival : null),
    disagreement: () => (view.frame && view.frame.disagreement ? view.frame.disagreement : null),
    rivalOverlay: () => (versus !== null ? versus.overlay() : null),
  };
})(window.TetrisTrainer);
