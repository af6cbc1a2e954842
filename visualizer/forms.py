"""The new-run form: name, preset, visibility and every TrainConfig field.

The form only parses; `services.run_create_and_start` validates, so the page, the API
and `manage.py` give the same message for the same bad value.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from trainer.models import Run
from trainer.rl.config import PRESETS, TrainConfig

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


class RunForm(forms.Form):
    """A new run; a config field left blank takes the chosen preset's value."""

    name = forms.CharField(max_length=200)
    preset = forms.ChoiceField(choices=[(name, name) for name in PRESETS], initial=DEFAULT_PRESET)
    visibility = forms.ChoiceField(choices=Run.Visibility.choices, initial=Run.Visibility.PRIVATE)

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
