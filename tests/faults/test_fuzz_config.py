"""Fuzz TrainConfig: a rejected config names each bad field and what it allows; an accepted
one starts and trains.

Values are drawn per field as good (in range, of the right kind) or bad (out of range, the
wrong kind, NaN, junk text), so the test knows which fields a rejection has to name.
"""

import dataclasses
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainer.rl import ConfigError, TrainConfig, train
from trainer.rl.config import (
    MAX_CEM_GAMES_PER_GENERATION,
    MAX_REPLAY_BYTES,
    replay_bytes_per_transition,
)
from trainer.rl.events import Callback, EpisodeMetrics, Frame

FIELDS = {field.name: field for field in dataclasses.fields(TrainConfig)}
# Rules between fields; they are checked only once every field is valid on its own.
CROSS_FIELD = {"epsilon_end", "lr_final", "batch_size", "cem_train_height", "cem_elite_fraction"}
# The range a number's message states: "between <low> and <high>".
RANGE = re.compile(r"between (\S+) and (\S+), got")

JUNK_TEXT = st.one_of(
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e999", "0x10", "ten", "1,5", "1..2", "--1"]),
    st.text(max_size=20),
)
WRONG_KIND = st.one_of(
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)


def good_value(field: dataclasses.Field) -> st.SearchStrategy:
    """Values the field accepts on its own: in range, as a number or as its text."""
    low, high, choices = field.metadata["low"], field.metadata["high"], field.metadata["choices"]
    if choices:
        return st.sampled_from(choices)
    if field.type == "int":
        number = st.one_of(st.sampled_from([int(low), int(high)]), st.integers(int(low), int(high)))
        return st.one_of(number, number.map(float), number.map(str))
    number = st.one_of(st.sampled_from([low, high]), st.floats(low, high))
    return st.one_of(number, number.map(repr))


def bad_value(field: dataclasses.Field) -> st.SearchStrategy:
    """Values the field must refuse: out of range, the wrong kind, or junk."""
    low, high, choices = field.metadata["low"], field.metadata["high"], field.metadata["choices"]
    if choices:
        return st.one_of(st.text(max_size=20).filter(lambda text: text not in choices), WRONG_KIND)
    outside = st.one_of(
        st.integers(max_value=math.ceil(low) - 1),
        st.integers(min_value=math.floor(high) + 1),
        st.floats(max_value=low, exclude_max=True, allow_nan=False),
        st.floats(min_value=high, exclude_min=True, allow_nan=False),
    )
    wrong = [WRONG_KIND, JUNK_TEXT.filter(lambda text: not _is_number_text(text))]
    if field.type == "int":
        fractions = st.floats(low, high).filter(lambda number: number != int(number))
        wrong.append(fractions)
    return st.one_of(outside, outside.map(str), *wrong)


def _is_number_text(text: str) -> bool:
    try:
        return math.isfinite(float(text.strip().replace("_", "")))
    except ValueError:
        return False


@st.composite
def field_values(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    """Some fields, each good or bad, and the names of the bad ones."""
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=8))
    values, bad = {}, set()
    for name in names:
        if draw(st.booleans()):
            values[name] = draw(bad_value(FIELDS[name]))
            bad.add(name)
        else:
            values[name] = draw(good_value(FIELDS[name]))
    return values, bad


def _as_number(field: dataclasses.Field, value: Any) -> Any:
    """A good value as the number it stands for (text included); choices stay text."""
    return value if field.metadata["choices"] else float(value)


def cross_field_violations(config: dict[str, Any]) -> set[str]:
    """The fields whose rule against another field the values break."""
    broken = set()
    if config["epsilon_end"] > config["epsilon_start"]:
        broken.add("epsilon_end")
    if config["lr_final"] > config["lr"]:
        broken.add("lr_final")
    if config["batch_size"] > config["buffer_size"]:
        broken.add("batch_size")
    if 0 < config["cem_train_height"] < 6:
        broken.add("cem_train_height")
    if round(config["cem_population"] * config["cem_elite_fraction"]) < 2:
        broken.add("cem_elite_fraction")
    per_transition = replay_bytes_per_transition(config["features"], int(config["width"]))
    if config["algorithm"] == "dqn" and config["buffer_size"] * per_transition > MAX_REPLAY_BYTES:
        broken.add("buffer_size")
    games = config["cem_population"] * config["cem_games_per_sample"]
    if config["algorithm"] == "cem" and games > MAX_CEM_GAMES_PER_GENERATION:
        broken.add("cem_games_per_sample")
    return broken


def assert_message_states_what_is_allowed(name: str, message: str) -> None:
    """A field's message gives its exact range, or lists every choice."""
    field = FIELDS[name]
    if field.metadata["choices"]:
        assert all(choice in message for choice in field.metadata["choices"]), message
        return
    kind = "an integer" if field.type == "int" else "a number"
    assert kind in message, message
    found = RANGE.search(message)
    assert found, f"{name}: no range in {message!r}"
    assert float(found[1]) == field.metadata["low"], f"{name}: low bound in {message!r}"
    assert float(found[2]) == field.metadata["high"], f"{name}: high bound in {message!r}"


@settings(max_examples=400, deadline=None)
@given(drawn=field_values(), unknown=st.sets(st.text(max_size=12), max_size=2))
def test_a_rejected_config_names_every_bad_field_and_what_it_allows(
    drawn: tuple[dict[str, Any], set[str]], unknown: set[str]
) -> None:
    values, bad = drawn
    unknown -= set(FIELDS)
    values.update(dict.fromkeys(unknown, 1))
    try:
        config = TrainConfig.from_dict(values)
    except ConfigError as error:
        assert str(error), "a ConfigError without a message"
        if unknown:
            assert error.errors == dict.fromkeys(unknown, "unknown setting")
        elif bad:
            assert set(error.errors) == bad
            for name, message in error.errors.items():
                assert_message_states_what_is_allowed(name, message)
        else:
            merged = {**TrainConfig().to_dict(), **values}
            as_numbers = {name: _as_number(FIELDS[name], value) for name, value in merged.items()}
            assert set(error.errors) == cross_field_violations(as_numbers)
            assert all(re.search(r"[a-z]{3}", message) for message in error.errors.values())
        return
    assert not unknown and not bad, f"accepted {values!r}"
    assert not cross_field_violations(config.to_dict())


def _field_item(name: str) -> st.SearchStrategy[str]:
    field = FIELDS[name]
    text = st.one_of(good_value(field).map(str), bad_value(field).map(str), JUNK_TEXT)
    return text.map(f"{name}={{}}".format)


OVERRIDE_ITEM = st.one_of(
    st.sampled_from(sorted(FIELDS)).flatmap(_field_item),
    st.builds("{}={}".format, st.text(max_size=12), JUNK_TEXT),
    st.text(max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(OVERRIDE_ITEM, max_size=5))
def test_junk_overrides_are_refused_naming_the_setting(items: list[str]) -> None:
    parsed, refused = {}, set()
    for item in items:
        key, sep, _ = item.partition("=")
        named = key.strip() or item
        try:
            alone = TrainConfig.parse_overrides([item])
        except ConfigError as error:
            assert list(error.errors) == [named], f"{item!r} refused as {error.errors!r}"
            if sep and named in FIELDS:
                assert_message_states_what_is_allowed(named, error.errors[named])
            refused.add(named)
            continue
        # What parses is a value the field accepts on its own.
        assert list(alone) == [named], f"{item!r} parsed as {alone!r}"
        field, value = FIELDS[named], alone[named]
        assert type(value).__name__ == field.type, f"{item!r} parsed as {alone!r}"
        if field.metadata["choices"]:
            assert value in field.metadata["choices"]
        else:
            assert field.metadata["low"] <= value <= field.metadata["high"]
        parsed.update(alone)
    try:
        values = TrainConfig.parse_overrides(items)
    except ConfigError as error:
        assert set(error.errors) == refused
    else:
        assert not refused and values == parsed


class Watcher(Callback):
    """Keeps what a run reports, to check it after the run."""

    def __init__(self) -> None:
        self.episodes: list[EpisodeMetrics] = []
        self.frames: list[Frame] = []

    def on_episode(self, m: EpisodeMetrics) -> None:
        """Keep the game's metrics."""
        self.episodes.append(m)

    def on_frame(self, f: Frame) -> None:
        """Keep the frame."""
        self.frames.append(f)


def number(field: dataclasses.Field) -> st.SearchStrategy:
    """An in-range number of the field's type, its bounds more often than chance."""
    low, high = field.metadata["low"], field.metadata["high"]
    if field.type == "int":
        return st.one_of(st.sampled_from([int(low), int(high)]), st.integers(int(low), int(high)))
    return st.one_of(st.sampled_from([low, high]), st.floats(low, high))


@st.composite
def trainable_configs(draw: st.DrawFn) -> dict[str, Any]:
    """Configs that pass validation, on a budget of a few hundred placements.

    Every field ranges over what it accepts, except the ones that set how much work one
    step is (games per generation, games in lockstep, network, buffer and batch sizes):
    those stay small enough for a test, at their low bounds more often than chance.
    """
    values = {
        name: draw(st.sampled_from(field.metadata["choices"]))
        if field.metadata["choices"]
        else draw(number(field))
        for name, field in FIELDS.items()
    }
    small = {"max_pieces": (1, 200), "max_episodes": (0, 3), "piece_cap": (0, 40)}
    small |= {"buffer_size": (100, 5000), "learning_starts": (0, 150), "cem_population": (4, 16)}
    small |= {"cem_games_per_sample": (1, 3), "num_envs": (1, 64), "hidden_size": (4, 256)}
    for name, (low, high) in small.items():
        values[name] = draw(st.one_of(st.just(low), st.integers(low, high)))
    values["max_minutes"] = 0.0
    values["inject_nan_at_update"] = 0
    values["cem_chunk_games"] = 0  # no Celery workers here: test_batches.py refuses it
    values["epsilon_end"] = draw(st.floats(0.0, values["epsilon_start"]))
    values["lr_final"] = draw(st.floats(1e-7, min(values["lr"], 0.1)))
    values["batch_size"] = draw(st.integers(1, 64))
    values["cem_train_height"] = draw(st.one_of(st.just(0), st.integers(6, values["height"])))
    fewest = 1.51 / values["cem_population"]  # round(population * fraction) >= 2
    values["cem_elite_fraction"] = draw(st.floats(max(0.01, fewest), 0.5))
    return values


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=trainable_configs())
def test_an_accepted_config_starts_and_trains(values: dict[str, Any]) -> None:
    config = TrainConfig.from_dict(values)
    watcher = Watcher()
    with tempfile.TemporaryDirectory() as folder:
        result = train(config, callbacks=[watcher], checkpoint_dir=Path(folder))
        assert result.checkpoint is not None and result.checkpoint.is_file()
    assert result.total_pieces > 0
    for metrics in watcher.episodes:
        assert metrics.loss is None or math.isfinite(metrics.loss)
        assert metrics.pieces <= (config.piece_cap or metrics.pieces)
    for frame in watcher.frames:
        assert len(frame.board) == config.width * config.height
    if config.algorithm == "dqn":
        assert result.total_pieces < config.max_pieces + config.num_envs
        assert bool(watcher.frames) == bool(config.frames_per_second)


# What the fuzzer found, kept as examples.


def test_a_range_is_stated_exactly() -> None:
    # Was "between 0 and 2.14748e+09": six significant digits, below the real bound.
    with pytest.raises(ConfigError) as raised:
        TrainConfig(seed=-1)
    assert "between 0 and 2147483647" in raised.value.errors["seed"]


def test_a_long_bad_value_is_quoted_cut_short() -> None:
    with pytest.raises(ConfigError) as raised:
        TrainConfig(algorithm="x" * 1_000_000)
    assert len(raised.value.errors["algorithm"]) < 200


def test_an_override_without_a_name_is_refused_as_such() -> None:
    # Was {"": "unknown setting"}: no name to read.
    with pytest.raises(ConfigError) as raised:
        TrainConfig.parse_overrides(["=5"])
    assert raised.value.errors == {"=5": "expected key=value, got '=5'"}


def test_dqn_learning_from_its_first_placement_does_not_diverge() -> None:
    # Was TrainingDiverged: input statistics from one sample had a NaN spread.
    config = TrainConfig(learning_starts=0, batch_size=1, num_envs=1, max_pieces=20)
    assert train(config).total_pieces == 20
