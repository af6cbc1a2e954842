// The new-run form: choosing a preset fills every setting with that preset's value, and
// the cross-entropy group unfolds when the algorithm is cem.
"use strict";

(function () {
  const presets = JSON.parse(document.getElementById("presets").textContent);
  const form = document.getElementById("run-form");
  const presetSelect = form.elements.namedItem("preset");
  const algorithmSelect = form.elements.namedItem("algorithm");
  const cemGroup = document.getElementById("cem-settings");

  function fillFromPreset(name) {
    const values = presets[name];
    if (!values) return;
    for (const [field, value] of Object.entries(values)) {
      const input = form.elements.namedItem(field);
      if (input) input.value = String(value);
    }
    showAlgorithmGroup();
  }

  function showAlgorithmGroup() {
    if (algorithmSelect.value === "cem") cemGroup.open = true;
  }

  presetSelect.addEventListener("change", () => fillFromPreset(presetSelect.value));
  algorithmSelect.addEventListener("change", showAlgorithmGroup);
})();
