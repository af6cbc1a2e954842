// Draws a Tetris board frame and the next piece on canvases, in the standard colours.
"use strict";

window.TetrisTrainer = window.TetrisTrainer || {};

(function (ns) {
  const PIECE_COLORS = {
    I: "#00e5ff", // cyan
    O: "#ffd600", // yellow
    T: "#aa00ff", // purple
    S: "#00e676", // green
    Z: "#ff1744", // red
    J: "#2979ff", // blue
    L: "#ff9100", // orange
  };
  // Spawn orientation of each piece, as (column, row) cells in a 4x2 box.
  const PIECE_CELLS = {
    I: [[0, 0], [1, 0], [2, 0], [3, 0]],
    O: [[1, 0], [2, 0], [1, 1], [2, 1]],
    T: [[1, 0], [0, 1], [1, 1], [2, 1]],
    S: [[1, 0], [2, 0], [0, 1], [1, 1]],
    Z: [[0, 0], [1, 0], [1, 1], [2, 1]],
    J: [[0, 0], [0, 1], [1, 1], [2, 1]],
    L: [[2, 0], [0, 1], [1, 1], [2, 1]],
  };
  const EMPTY = "#0b0d12";
  const GRID = "#1c2030";
  const BOARD_PIXELS_HIGH = 520;

  // Size a canvas in CSS pixels and scale its backing store for sharp cells on HiDPI.
  function sizeCanvas(canvas, width, height) {
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const context = canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    return context;
  }

  function drawCell(context, x, y, size, color) {
    context.fillStyle = color;
    context.fillRect(x + 1, y + 1, size - 2, size - 2);
    const bevel = Math.max(2, Math.round(size / 8));
    context.fillStyle = "rgba(255, 255, 255, 0.28)";
    context.fillRect(x + 1, y + 1, size - 2, bevel);
    context.fillRect(x + 1, y + 1, bevel, size - 2);
    context.fillStyle = "rgba(0, 0, 0, 0.28)";
    context.fillRect(x + 1, y + size - 1 - bevel, size - 2, bevel);
    context.fillRect(x + size - 1 - bevel, y + 1, bevel, size - 2);
  }

  // Each side of a cell, as [row step, column step, from x, from y, to x, to y] in cells.
  const SIDES = [
    [-1, 0, 0, 0, 1, 0],
    [1, 0, 0, 1, 1, 1],
    [0, -1, 0, 0, 0, 1],
    [0, 1, 1, 0, 1, 1],
  ];

  // The outline of a set of cells ([row from the top, column]): each side no other shares.
  function outlinePath(context, cells, size) {
    const taken = new Set(cells.map(([row, column]) => `${row},${column}`));
    context.beginPath();
    for (const [row, column] of cells) {
      for (const [dr, dc, x0, y0, x1, y1] of SIDES) {
        if (taken.has(`${row + dr},${column + dc}`)) continue;
        context.moveTo((column + x0) * size, (row + y0) * size);
        context.lineTo((column + x1) * size, (row + y1) * size);
      }
    }
    context.stroke();
  }

  class BoardView {
    constructor(boardCanvas, nextCanvas, columns, rows) {
      this.columns = columns;
      this.rows = rows;
      this.cell = Math.max(10, Math.min(28, Math.floor(BOARD_PIXELS_HIGH / rows)));
      this.board = sizeCanvas(boardCanvas, columns * this.cell, rows * this.cell);
      this.nextCell = Math.round(this.cell * 0.8);
      this.next = sizeCanvas(nextCanvas, 4 * this.nextCell + 8, 2 * this.nextCell + 8);
      this.layers = [];
      this.draw(".".repeat(columns * rows), "");
    }

    // `layer(context, view)` draws over the cells after each draw, layers in the order
    // added (the agent's options, then marks over them). The caller redraws if it should
    // show at once.
    addLayer(layer) {
      this.layers.push(layer);
    }

    // `cells` is columns*rows characters, row-major from the top row.
    draw(cells, nextPiece) {
      this.shown = { cells, nextPiece };
      const { board, cell, columns, rows } = this;
      board.fillStyle = EMPTY;
      board.fillRect(0, 0, columns * cell, rows * cell);
      board.strokeStyle = GRID;
      board.lineWidth = 1;
      board.beginPath();
      for (let c = 1; c < columns; c += 1) {
        board.moveTo(c * cell + 0.5, 0);
        board.lineTo(c * cell + 0.5, rows * cell);
      }
      for (let r = 1; r < rows; r += 1) {
        board.moveTo(0, r * cell + 0.5);
        board.lineTo(columns * cell, r * cell + 0.5);
      }
      board.stroke();
      const count = Math.min(cells.length, columns * rows);
      for (let i = 0; i < count; i += 1) {
        const color = PIECE_COLORS[cells[i]];
        if (color) drawCell(board, (i % columns) * cell, Math.floor(i / columns) * cell, cell, color);
      }
      for (const layer of this.layers) {
        board.save();
        layer(board, this);
        board.restore();
      }
      this.drawNext(nextPiece);
    }

    // The last board again, with the layers as they are now.
    redraw() {
      this.draw(this.shown.cells, this.shown.nextPiece);
    }

    // Outline a set of cells ([row from the top, column]) in `color`, dashed as `dash`
    // ([] for solid): for a layer. A dark halo under the line keeps it clear over light
    // cells and green ghosts.
    outline(cells, color, dash) {
      const context = this.board;
      context.lineJoin = "round";
      context.setLineDash(dash);
      context.strokeStyle = "rgba(0, 0, 0, 0.7)";
      context.lineWidth = 4.5;
      outlinePath(context, cells, this.cell);
      context.strokeStyle = color;
      context.lineWidth = 2.5;
      outlinePath(context, cells, this.cell);
      context.setLineDash([]);
    }

    drawNext(piece) {
      const { next, nextCell } = this;
      const canvas = next.canvas;
      next.clearRect(0, 0, canvas.width, canvas.height);
      const cells = PIECE_CELLS[piece];
      if (!cells) return;
      const wide = Math.max(...cells.map(([c]) => c)) + 1;
      const high = Math.max(...cells.map(([, r]) => r)) + 1;
      const left = (4 * nextCell + 8 - wide * nextCell) / 2;
      const top = (2 * nextCell + 8 - high * nextCell) / 2;
      for (const [c, r] of cells) {
        drawCell(next, left + c * nextCell, top + r * nextCell, nextCell, PIECE_COLORS[piece]);
      }
    }
  }

  ns.BoardView = BoardView;
  ns.PIECE_COLORS = PIECE_COLORS;
})(window.TetrisTrainer);
