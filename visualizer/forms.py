"""The new-run form (name, preset, visibility and every TrainConfig field) and the
new-experiment form (a base config, a grid or ranges to sweep, seeds, the sampler).

The forms only parse; `services.run_create_and_start` and `experiments.experiment_create`
validate, so the pages, the API and `manage.py` give the same message for the same bad
value.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from trainer import experiments
from trainer.models import Experiment, Run
from trainer.rl.config import PRESETS, ConfigError, TrainConfig

DEFAULT_PRESET = "quick"
# Fields that only the cross-entropy learner reads share this prefix.
CEM_PREFIX = "cem_"


def preset_values() -> dict[str, dict[str, Any]]:
    """Every preset's full config, for the form's preset picker."""
    return {name: TrainConfig.from_preset(name).to_dict() for name in PRESETS}


def _number_step(spec: dict[str, Any]) -> str:
    return "1" if spec["type"] == "int" else "any"


def _format_bound(value: float, kind: str) -> str:
    return f"{int(value):,}" if kind == "int" else f"{value:g}"


def allowed_values(spec: dict[str, Any]) -> str:
    """What a field accepts, in words: its choices or its range."""
    if "choices" in spec:
        return " | ".join(spec["choices"])
    if spec.get("min") is None or spec.get("max") is None:
        return ""
    low, high = (_format_bound(spec[key], spec["type"]) for key in ("min", "max"))
    return f"{low} to {high}"


def doc_html(doc: str) -> SafeString:
    """A field's docstring as HTML, with its `backticked` names set as code."""
    parts = escape(doc).split("`")
    # Safe: the text was escaped before the code tags were added.
    return mark_safe(
        "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))
    )


def config_field(spec: dict[str, Any], initial: Any) -> forms.Field:
    """A form field for one TrainConfig field spec: a select for choices, else a number."""
    if "choices" in spec:
        widget: forms.Widget = forms.Select(choices=[(c, c) for c in spec["choices"]])
    elif spec["type"] in {"int", "float"}:
        widget = forms.NumberInput(
            attrs={"min": spec["min"], "max": spec["max"], "step": _number_step(spec)}
        )
    else:
        widget = forms.TextInput()
    field = forms.CharField(
        required=False, strip=True, widget=widget, help_text=doc_html(spec["doc"]), initial=initial
    )
    field.allowed = allowed_values(spec)
    return field


def preset_field() -> forms.ChoiceField:
    """The preset picker of the run and experiment forms."""
    return forms.ChoiceField(choices=[(name, name) for name in PRESETS], initial=DEFAULT_PRESET)


def visibility_field() -> forms.ChoiceField:
    """Private or public, as for runs."""
    return forms.ChoiceField(choices=Run.Visibility.choices, initial=Run.Visibility.PRIVATE)


class RunForm(forms.Form):
    """A new run; a config field left blank takes the chosen preset's value."""

    name = forms.CharField(max_length=200)
    preset = preset_field()
    visibility = visibility_field()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        defaults = TrainConfig.from_preset(DEFAULT_PRESET).to_dict()
        self.config_names: list[str] = []
        for spec in TrainConfig.field_specs():
            self.fields[spec["name"]] = config_field(spec, defaults.get(spec["name"]))
            self.config_names.append(spec["name"])

    @property
    def config_fields(self) -> list[forms.BoundField]:
        """The config fields outside the cem-only group."""
        return [self[name] for name in self.config_names if not name.startswith(CEM_PREFIX)]

    @property
    def cem_fields(self) -> list[forms.BoundField]:
        """The config fields that only the cross-entropy learner reads."""
        return [self[name] for name in self.config_names if name.startswith(CEM_PREFIX)]

    @property
    def cem_fields_open(self) -> bool:
        """Show the cem group unfolded: cem is chosen, or one of its fields has an error."""
        return self["algorithm"].value() == "cem" or any(f.errors for f in self.cem_fields)

    def config_overrides(self) -> dict[str, str]:
        """The config values the user filled in, as text for TrainConfig to parse."""
        return {
            name: self.cleaned_data[name] for name in self.config_names if self.cleaned_data[name]
        }

    def add_config_errors(self, errors: dict[str, str]) -> None:
        """Show each service error next to its field; errors without a field go on top."""
        for name, message in errors.items():
            self.add_error(name if name in self.fields else None, message)


def _lines(text: str) -> list[str]:
    """The non-blank lines of a text box, stripped; `#` starts a comment."""
    stripped = (line.partition("#")[0].strip() for line in text.splitlines())
    return [line for line in stripped if line]


def _named_lines(text: str, example: str) -> dict[str, str]:
    """`name = rest` lines as {name: rest}; ValidationError naming each bad line."""
    found, errors = {}, []
    for line in _lines(text):
        name, sep, rest = line.partition("=")
        name, rest = name.strip(), rest.strip()
        if not sep or not name or not rest:
            errors.append(f"expected a line like `{example}`, got {line[:60]!r}")
        elif name in found:
            errors.append(f"{name} is on two lines")
        else:
            found[name] = rest
    if errors:
        raise forms.ValidationError(errors)
    return found


def _range_end(text: str) -> int | float:
    """One end of a range: an integer if it is written as one, else a float."""
    try:
        return int(text)
    except ValueError:
        return float(text)


class ExperimentForm(forms.Form):
    """A new experiment: settings over a preset, the grid or ranges it sweeps, its seeds."""

    GRID_EXAMPLE = "lr = 0.001, 0.0003"
    RANGE_EXAMPLE = "lr = 1e-4 .. 1e-2 log"
    # experiment_create's error keys `grid.<field>`, `space.<field>`, `config` go to these.
    FIELD_OF_ERROR = {"grid": "grid", "space": "ranges", "config": "settings"}
    # Fields that experiment_create takes under their own name.
    AS_GIVEN = (
        "name",
        "preset",
        "visibility",
        "grid",
        "sampler",
        "trials",
        "seeds",
        "parallel",
        "pruner",
        "eval_games",
        "eval_piece_cap",
    )

    name = forms.CharField(required=False, strip=True)
    preset = preset_field()
    visibility = visibility_field()
    settings = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": "algorithm=cem\nmax_pieces=200000"}),
        help_text="One setting a line, key=value (as --set takes them), over the preset's. "
        "Each run needs a budget: max_minutes or max_pieces.",
    )
    grid = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": GRID_EXAMPLE}),
        help_text="One swept setting a line: field = value, value, ... The grid sampler trains "
        "every combination.",
    )
    ranges = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": RANGE_EXAMPLE}),
        help_text="Random and tpe only: field = low .. high, and `log` to sample on a log scale.",
    )
    sampler = forms.ChoiceField(
        choices=[(name, name) for name in Experiment.Sampler.values],
        initial=Experiment.Sampler.GRID,
        help_text="grid: every combination of the lists; random or tpe (Optuna's): "
        "`trials` draws from the lists and ranges.",
    )
    trials = forms.IntegerField(
        required=False,
        help_text="Configurations to train; blank: the whole grid (grid), "
        f"{experiments.DEFAULT_RANDOM_TRIALS} (random, tpe).",
    )
    seeds = forms.IntegerField(initial=3, help_text="Runs per configuration, each on its own seed.")
    parallel = forms.IntegerField(
        initial=2, help_text="Runs queued or running at once; they count among your active runs."
    )
    pruner = forms.ChoiceField(
        choices=[(name or "none", name or "none") for name in Experiment.Pruner.values],
        initial="none",
        help_text="Stops the configurations whose curve lags, as Optuna's pruner decides.",
    )
    eval_games = forms.IntegerField(
        initial=experiments.DEFAULT_EVAL_GAMES,
        help_text="Games of each run's final evaluation, on held-out seeds.",
    )
    eval_piece_cap = forms.IntegerField(
        initial=experiments.DEFAULT_EVAL_PIECE_CAP,
        help_text="Pieces after which a final evaluation game is cut (0 = none).",
    )

    def clean_settings(self) -> dict[str, Any]:
        items = _lines(self.cleaned_data["settings"])
        try:
            return TrainConfig.parse_overrides(items)
        except ConfigError as error:
            raise forms.ValidationError(
                [f"{name}: {message}" for name, message in error.errors.items()]
            ) from None

    def clean_grid(self) -> dict[str, list[str]]:
        lines = _named_lines(self.cleaned_data["grid"], self.GRID_EXAMPLE)
        return {name: [value.strip() for value in rest.split(",")] for name, rest in lines.items()}

    def clean_ranges(self) -> dict[str, dict]:
        space, errors = {}, []
        for name, rest in _named_lines(self.cleaned_data["ranges"], self.RANGE_EXAMPLE).items():
            ends, log_scale = rest, rest.endswith(" log")
            if log_scale:
                ends = rest.removesuffix(" log")
            low, _, high = ends.partition("..")
            try:
                space[name] = {"low": _range_end(low), "high": _range_end(high), "log": log_scale}
            except ValueError:
                errors.append(
                    f"{name}: expected low .. high (numbers), like `{self.RANGE_EXAMPLE}`"
                )
        if errors:
            raise forms.ValidationError(errors)
        return space

    def experiment_fields(self) -> dict[str, Any]:
        """What the form holds, as `experiments.experiment_create` takes it."""
        data = self.cleaned_data
        fields = {name: data[name] for name in self.AS_GIVEN}
        return {**fields, "config": data["settings"], "space": data["ranges"]}

    def add_experiment_errors(self, errors: dict[str, str]) -> None:
        """Show each error of `experiment_create` next to the box or field it is about:
        `config.x` under the settings, `grid.x` and `space.x` under theirs."""
        for key, message in errors.items():
            head, dot, rest = key.partition(".")
            if dot and head in self.FIELD_OF_ERROR:
                self.add_error(self.FIELD_OF_ERROR[head], f"{rest}: {message}")
            elif key in self.FIELD_OF_ERROR:
                self.add_error(self.FIELD_OF_ERROR[key], message)
            elif key in self.fields:
                self.add_error(key, message)
            else:
                self.add_error(None, f"{key}: {message}")
