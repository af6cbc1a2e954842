// "Watch the agent think": the options a greedy policy weighed for the piece to place now,
// over the board and beside it. Each legal placement is a faint ghost where the piece
// would land, coloured from red (the worst value) to green (the best); the one the policy
// takes is outlined in white. Beside the board, the top five with their values and, for a
// linear policy, each value split into weight × feature. The pages hand it their frames
// (`piece` and `options`, docs/ARCHITECTURE.md) and tell the server when the toggle moves.
"use strict";

window.TetrisTrainer = window.TetrisTrainer || {};

(function (ns) {
  const STORAGE_KEY = "tetris-trainer:overlay";
  const TOP_ROWS = 5;
  const WAITING = "waiting for the agent's options…";
  const NO_PLACEMENT = "no legal placement is left: the game is over";
  const GAME_OVER = "the game is over: no piece to place";
  const CHOSEN_OUTLINE = "#ffffff";
  const RECORDED_OUTLINE = "#ffd54f";
  const GHOST_INSET = 3;
  const GHOST_ALPHA = 0.38;
  // The table's columns, each with what it means.
  const COLUMNS = [
    ["#", "rank"],
    ["rotation", "quarter turns clockwise from the spawn orientation"],
    ["column", "the column of the piece's leftmost cell"],
    ["value", "what the agent expects of this placement: higher is better"],
    ["gap", "value minus the best value"],
  ];
  const HOW_TO_LINEAR =
    "Each value is the sum of the terms under it, weight × feature (terms of 0 left " +
    "out). A term in red is worse than the best option's, in green better.";
  const HOW_TO_VALUE =
    "Each value is the lines the placement clears plus the network's (discounted) value " +
    "of the board it leaves.";

  // The toggle is remembered across pages and visits; storage may be off (private mode).
  function storedOn() {
    try {
      return window.localStorage.getItem(STORAGE_KEY) === "on";
    } catch {
      return false;
    }
  }

  function storeOn(on) {
    try {
      window.localStorage.setItem(STORAGE_KEY, on ? "on" : "off");
    } catch {
      // Not remembered; the toggle still works on this page.
    }
  }

  // Where a value lies between the worst (0) and the best (1); all equal count as best.
  function rank01(value, best, worst) {
    return best > worst ? (value - worst) / (best - worst) : 1;
  }

  // Red (the worst) through yellow to green (the best).
  function valueColor(t, alpha) {
    return `hsla(${Math.round(120 * t)}, 85%, 52%, ${alpha})`;
  }

  function formatValue(value) {
    const digits = Math.abs(value) >= 100 ? 1 : 2;
    const text = value.toLocaleString("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
    return Number(text.replace(/,/g, "")) === 0 ? "0" : text.replace("-", "−");
  }

  function formatSigned(value) {
    const text = formatValue(value);
    return value > 0 ? `+${text}` : text;
  }

  // "landing_height" -> "landing height".
  function featureWords(name) {
    return name.replace(/_+/g, " ");
  }

  function element(tag, className, text) {
    const made = document.createElement(tag);
    if (className) made.className = className;
    if (text !== undefined) made.textContent = text;
    return made;
  }

  function samePlacement(a, b) {
    return a !== null && b !== null && a.rotation === b.rotation && a.column === b.column;
  }

  class OptionsOverlay {
    // `board`: the BoardView to draw on. `elements`: the page's `toggle` (checkbox),
    // `panel` (shown while on), `status` (what is missing), `table` (the top five) and
    // `howTo` (how to read the values). `onToggle(on)`: the page tells its source.
    constructor(board, elements, onToggle) {
      this.board = board;
      this.elements = elements;
      this.onToggle = onToggle;
      this.on = storedOn();
      this.waiting = WAITING;
      // What is shown now: {piece, options (null until they come), recorded, ghosts, and
      // pieces, the frame's count of pieces placed}.
      this.shown = null;
      elements.toggle.checked = this.on;
      elements.toggle.addEventListener("change", () => this.setOn(elements.toggle.checked));
      board.addLayer((context, view) => this.drawGhosts(context, view));
      this.render();
    }

    // The overlay of a page with the usual elements (templates: the overlay-* ids). A page
    // with two boards gives the second one's panel ids a `suffix` ("-rival"); both follow
    // the one toggle, and only one of them tells the source.
    static onPage(board, onToggle, suffix = "") {
      const $ = (id) => document.getElementById(id);
      const elements = {
        toggle: $("overlay-toggle"),
        panel: $(`overlay-panel${suffix}`),
        status: $(`overlay-status${suffix}`),
        table: $(`overlay-table${suffix}`),
        howTo: $(`overlay-how-values${suffix}`),
      };
      return new OptionsOverlay(board, elements, onToggle);
    }

    isOn() {
      return this.on;
    }

    setOn(on) {
      this.on = on;
      storeOn(on);
      this.shown = null; // the options of the board shown are not here yet, or not wanted
      this.render();
      this.board.redraw();
      this.onToggle(on);
    }

    // A socket that (re)connected knows nothing of the toggle: tell it again.
    announce() {
      if (this.on) this.onToggle(true);
    }

    // This page has no options to show: the toggle is off and says why.
    disable(reason) {
      const { toggle } = this.elements;
      this.on = false;
      this.shown = null;
      toggle.checked = false;
      toggle.disabled = true;
      toggle.title = reason;
      toggle.closest("label").title = reason;
      this.render();
    }

    // What to say while on with no options yet (null: the default).
    setWaiting(text) {
      this.waiting = text || WAITING;
      if (this.options() === null) this.render();
    }

    // A frame about to be drawn: its `piece` and `options` (if any) become what the board
    // and the table show. Call it before the board draws the frame. `recorded`: in a
    // replay, the placement the record makes next ({rotation, column}), marked if the
    // policy would choose another.
    show(frame, recorded = null) {
      if (!this.on) return;
      const piece = frame.piece || null;
      const options = Array.isArray(frame.options) ? frame.options : null;
      const ghosts = options && options.map((option) => this.landing(frame.board, piece, option));
      this.shown = { piece, options, recorded, ghosts, pieces: frame.pieces };
      this.render();
    }

    landing(board, piece, { rotation, column }) {
      const { columns, rows } = this.board;
      return ns.TetrisRules.landingCells(board, columns, rows, piece, rotation, column);
    }

    // --- over the board ---

    // Ghosts overlap: a cell takes the colour of the best option on it, drawn once, so
    // the ghosts stay faint however many share a cell.
    drawGhosts(context, view) {
      if (this.options() === null || !this.shown.options.length) return;
      const { options, ghosts, recorded } = this.shown;
      const size = view.cell;
      const best = options[0].value;
      const worst = options[options.length - 1].value;
      const cells = new Map(); // "row,column" -> [row, column, t]; options come best first
      options.forEach((option, i) => {
        for (const [row, column] of ghosts[i] || []) {
          const key = `${row},${column}`;
          if (!cells.has(key)) cells.set(key, [row, column, rank01(option.value, best, worst)]);
        }
      });
      const inner = size - 2 * GHOST_INSET;
      for (const [row, column, t] of cells.values()) {
        context.fillStyle = valueColor(t, GHOST_ALPHA);
        context.fillRect(column * size + GHOST_INSET, row * size + GHOST_INSET, inner, inner);
      }
      const chosen = options.findIndex((option) => option.chosen);
      if (this.recordedDiffers()) {
        const marked = options.findIndex((option) => samePlacement(option, recorded));
        if (marked >= 0 && ghosts[marked]) {
          view.outline(ghosts[marked], RECORDED_OUTLINE, [4, 3]);
        }
      }
      if (chosen >= 0 && ghosts[chosen]) {
        view.outline(ghosts[chosen], CHOSEN_OUTLINE, []);
      }
    }

    // The options shown now, or null (off, or none came yet).
    options() {
      return this.on && this.shown !== null ? this.shown.options : null;
    }

    // Whether a replay's record places the piece elsewhere than the policy would.
    recordedDiffers() {
      const { options, recorded } = this.shown;
      if (recorded === null) return false;
      return !samePlacement(recorded, options.find((option) => option.chosen) || null);
    }

    // --- beside the board ---

    render() {
      const { panel, status, table, howTo } = this.elements;
      panel.hidden = !this.on;
      const options = this.options();
      if (options === null) {
        const over = this.on && this.shown !== null && this.shown.piece === null;
        status.textContent = this.on ? (over ? GAME_OVER : this.waiting) : "";
      } else if (!options.length) {
        status.textContent = NO_PLACEMENT;
      } else {
        const piece = this.shown.piece ? `the ${this.shown.piece} piece` : "the piece";
        const counted = options.length === 1 ? "1 placement" : `${options.length} placements`;
        const chosen = options.findIndex((option) => option.chosen);
        const takes = chosen < 0 ? "" : `; it takes #${chosen + 1}`;
        status.textContent = `${counted} of ${piece}, best first${takes}`;
      }
      status.dataset.waiting = String(this.on && options === null);
      if (options === null || !options.length) {
        table.replaceChildren();
        howTo.textContent = "";
        return;
      }
      const linear = options.some((option) => option.terms);
      howTo.textContent = linear ? HOW_TO_LINEAR : HOW_TO_VALUE;
      table.replaceChildren(this.optionsTable(options), ...this.recordedNote(options));
    }

    // One tbody per option, its figures in a row and its terms (if any) in a row under it.
    optionsTable(options) {
      const table = element("table", "overlay-options");
      const head = element("tr");
      for (const [text, title] of COLUMNS) {
        const cell = element("th", "", text);
        cell.title = title;
        head.append(cell);
      }
      table.append(element("thead"));
      table.tHead.append(head);
      options.slice(0, TOP_ROWS).forEach((option, index) => {
        table.append(this.optionBody(option, index, options));
      });
      return table;
    }

    optionBody(option, index, options) {
      const best = options[0];
      const worst = options[options.length - 1].value;
      const isRecorded = this.recordedDiffers() && samePlacement(option, this.shown.recorded);
      const body = element("tbody");
      body.dataset.rotation = option.rotation;
      body.dataset.column = option.column;
      body.dataset.value = option.value;
      body.classList.toggle("chosen", Boolean(option.chosen));
      body.classList.toggle("recorded", isRecorded);
      // The swatch is the ghost's colour, ringed as the board outlines it.
      const rank = element("td", "rank");
      const swatch = element("span", "swatch");
      const color = valueColor(rank01(option.value, best.value, worst), 1);
      swatch.style.setProperty("--run-color", color);
      rank.append(swatch, String(index + 1));
      if (option.chosen) rank.title = "the placement the agent takes";
      if (isRecorded) rank.title = "the placement the record makes";
      const row = element("tr", "option");
      row.append(
        rank,
        element("td", "num", String(option.rotation)),
        element("td", "num", String(option.column)),
        element("td", "num", formatValue(option.value)),
        element("td", "num gap", index === 0 ? "best" : formatSigned(option.value - best.value)),
      );
      body.append(row);
      if (option.terms) body.append(this.termsRow(option, best));
      return body;
    }

    // The option's value as weight × feature, each term beside the best option's.
    termsRow(option, best) {
      const row = element("tr", "terms");
      const cell = element("td");
      cell.colSpan = 5;
      for (const [name, term] of Object.entries(option.terms)) {
        // A term of 0 here and in the best option tells nothing: it is left out.
        if (term === 0 && (!best.terms || best.terms[name] === 0)) continue;
        const item = element("span", "term", `${featureWords(name)} `);
        const figure = element("b", "", formatSigned(term));
        const than = best.terms ? term - best.terms[name] : 0;
        if (option !== best && Math.abs(than) > 1e-9) {
          figure.className = than < 0 ? "worse" : "better";
          figure.title = `${formatSigned(than)} against the best option`;
        }
        item.append(figure);
        cell.append(item);
      }
      row.append(cell);
      return row;
    }

    // In a replay, the placement the record makes, when the policy would choose another.
    recordedNote(options) {
      if (!this.recordedDiffers()) return [];
      const recorded = this.shown.recorded;
      const index = options.findIndex((option) => samePlacement(option, recorded));
      const where = `rotation ${recorded.rotation}, column ${recorded.column}`;
      const gap = index < 0 ? "" : `, ${formatSigned(options[index].value - options[0].value)}`;
      const rank = index < 0 ? "not a legal option" : `#${index + 1}${gap}`;
      const text = `The record places it elsewhere (dashed): ${where} (${rank}).`;
      return [element("p", "overlay-recorded", text)];
    }

    // --- for tests and the console ---

    // The options drawn now, as received: {on, piece, options}, and `pieces`, the pieces
    // placed in the frame they belong to (a frame is drawn at the next animation frame).
    state() {
      const shown = this.on ? this.shown : null;
      return {
        on: this.on,
        piece: shown ? shown.piece : null,
        options: this.options(),
        pieces: shown ? shown.pieces : null,
      };
    }

    // The top-five table as shown: [{rotation, column, value}].
    rows() {
      return Array.from(this.elements.table.querySelectorAll("tbody[data-rotation]"), (body) => ({
        rotation: Number(body.dataset.rotation),
        column: Number(body.dataset.column),
        value: Number(body.dataset.value),
      }));
    }
  }

  ns.OptionsOverlay = OptionsOverlay;
})(window.TetrisTrainer);
