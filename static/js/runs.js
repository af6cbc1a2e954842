// The run list: polls the runs API to keep statuses and figures live, and drives the
// Compare button from the tick boxes. The table is rendered by the server first.
"use strict";

(function (ns) {
  const page = JSON.parse(document.getElementById("runs-page").textContent);
  const tbody = document.querySelector("#runs tbody");
  const rowTemplate = document.getElementById("run-row");
  const emptyNote = document.getElementById("no-runs");
  const compareButton = document.getElementById("compare-button");
  const MAX_POLL_SECONDS = 60;
  const MAX_COMPARED = 20; // the compare page's limit (trainer.selectors.MAX_COMPARED_RUNS)

  function tickedIds() {
    return Array.from(tbody.querySelectorAll(".compare-tick:checked"), (box) => box.value);
  }

  function updateCompareButton() {
    const ids = tickedIds();
    compareButton.disabled = ids.length < 2 || ids.length > MAX_COMPARED;
    compareButton.textContent = ids.length >= 2 ? `Compare ${ids.length} runs` : "Compare";
    compareButton.title = ids.length > MAX_COMPARED ? `compare at most ${MAX_COMPARED} runs` : "";
  }

  function formatField(name, value) {
    if (name === "recent_mean_lines") return Number(value).toFixed(1);
    if (name === "best_evaluation") return ns.scoreText(value);
    return String(value);
  }

  function fillRow(row, run) {
    for (const cell of row.querySelectorAll("[data-field]")) {
      const name = cell.dataset.field;
      cell.textContent = formatField(name, run[name]);
    }
    const badge = row.querySelector('[data-field="status"]');
    badge.className = `badge status-${run.status}`;
  }

  function newRow(run) {
    const row = rowTemplate.content.firstElementChild.cloneNode(true);
    row.dataset.runId = run.id;
    row.querySelector(".compare-tick").value = run.id;
    row.querySelector(".compare-tick").setAttribute("aria-label", `compare ${run.name}`);
    row.querySelector('[data-field="name"]').href = `/runs/${run.id}/`;
    return row;
  }

  // Update rows in place (tick boxes keep their state), add new runs, drop gone ones.
  function render(runs) {
    const existing = new Map(
      Array.from(tbody.rows, (row) => [row.dataset.runId, row]),
    );
    let previous = null;
    for (const run of runs) {
      const row = existing.get(String(run.id)) || newRow(run);
      existing.delete(String(run.id));
      fillRow(row, run);
      const wanted = previous ? previous.nextElementSibling : tbody.firstElementChild;
      if (row !== wanted) tbody.insertBefore(row, wanted);
      previous = row;
    }
    for (const gone of existing.values()) gone.remove();
    emptyNote.hidden = runs.length > 0;
    updateCompareButton();
  }

  let failures = 0;

  async function poll() {
    if (!document.hidden) {
      try {
        const response = await fetch(page.runs_url, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
        if (response.status === 401) {
          window.location.reload(); // signed out elsewhere: the page sends us to sign-in
          return;
        }
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        render((await response.json()).items);
        failures = 0;
      } catch (error) {
        failures += 1;
      }
    }
    const delay = Math.min(page.poll_seconds * 2 ** failures, MAX_POLL_SECONDS);
    window.setTimeout(poll, delay * 1000);
  }

  tbody.addEventListener("change", (event) => {
    if (event.target.classList.contains("compare-tick")) updateCompareButton();
  });
  compareButton.addEventListener("click", () => {
    const ids = tickedIds();
    if (!compareButton.disabled) window.location.href = `${page.compare_url}?runs=${ids.join(",")}`;
  });

  updateCompareButton();
  window.setTimeout(poll, page.poll_seconds * 1000);
})(window.TetrisTrainer);
