"""TrainConfig: validation that names the field and its range, presets, overrides, specs."""

import json
import re

import pytest

from trainer.rl import PRESETS, ConfigError, TrainConfig
from trainer.rl.config import DQN_FEATURE_COUNTS, DQN_FEATURES


def test_defaults_are_valid_and_json_safe() -> None:
    config = TrainConfig()
    assert config.algorithm == "dqn"
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_out_of_range_value_names_field_and_range() -> None:
    with pytest.raises(ConfigError) as raised:
        TrainConfig(lr=5.0)
    assert set(raised.value.errors) == {"lr"}
    assert "between 1e-06 and 0.1" in raised.value.errors["lr"]
    assert "lr" in str(raised.value)


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        TrainConfig(algorithm="ppo", width=2, frames_per_second=-1.0)
    assert set(raised.value.errors) == {"algorithm", "width", "frames_per_second"}
    assert "dqn, cem" in raised.value.errors["algorithm"]


@pytest.mark.parametrize("value", [1.5, True, "ten", float("nan")])
def test_integer_field_rejects_non_integers(value: object) -> None:
    with pytest.raises(ConfigError) as raised:
        TrainConfig(batch_size=value)
    assert "integer" in raised.value.errors["batch_size"]


def test_cross_field_constraints_are_checked() -> None:
    with pytest.raises(ConfigError) as raised:
        TrainConfig(epsilon_start=0.1, epsilon_end=0.5, batch_size=500, buffer_size=200)
    assert set(raised.value.errors) == {"epsilon_end", "batch_size"}


def test_a_replay_buffer_that_would_take_gigabytes_is_refused_with_the_largest_allowed() -> None:
    with pytest.raises(ConfigError) as raised:
        TrainConfig(buffer_size=5_000_000, width=20)
    message = raised.value.errors["buffer_size"]
    largest = int(re.search(r"at most ([\d,]+)", message).group(1).replace(",", ""))
    assert TrainConfig(buffer_size=largest, width=20).buffer_size == largest
    with pytest.raises(ConfigError):
        TrainConfig(buffer_size=largest + 1, width=20)
    assert TrainConfig(algorithm="cem", buffer_size=5_000_000, width=20)  # cem keeps none


def test_replay_memory_estimate_counts_the_value_nets_real_inputs() -> None:
    from trainer.rl.features import feature_names

    for name, count in DQN_FEATURE_COUNTS.items():
        assert len(feature_names(name)) == count
    assert set(DQN_FEATURE_COUNTS) == set(DQN_FEATURES)


def test_a_cem_generation_of_millions_of_games_is_refused() -> None:
    with pytest.raises(ConfigError) as raised:
        TrainConfig(algorithm="cem", cem_population=10_000, cem_games_per_sample=1000)
    assert "10,000,000" in raised.value.errors["cem_games_per_sample"]


def test_presets_build_valid_configs() -> None:
    assert {"quick", "standard", "record"} <= set(PRESETS)
    assert TrainConfig.from_preset("quick").algorithm == "dqn"
    assert TrainConfig.from_preset("record").algorithm == "cem"


def test_unknown_preset_or_setting_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        TrainConfig.from_preset("turbo")
    assert "quick" in raised.value.errors["preset"]
    with pytest.raises(ConfigError) as raised:
        TrainConfig.from_preset("quick", {"learning_rate": 0.1})
    assert raised.value.errors == {"learning_rate": "unknown setting"}


def test_overrides_parse_to_field_types() -> None:
    values = TrainConfig.parse_overrides(["lr=1e-3", "algorithm=cem", "num_envs=16", "seed=1_000"])
    assert values == {"lr": 0.001, "algorithm": "cem", "num_envs": 16, "seed": 1000}
    assert TrainConfig.from_preset("quick", values).algorithm == "cem"


@pytest.mark.parametrize(
    ("items", "field"),
    [(["nope=1"], "nope"), (["lr"], "lr"), (["gamma=high"], "gamma"), (["width=100"], "width")],
)
def test_bad_overrides_are_config_errors(items: list[str], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        TrainConfig.parse_overrides(items)
    assert field in raised.value.errors


def test_field_specs_document_every_field_with_its_range() -> None:
    specs = TrainConfig.field_specs()
    assert [spec["name"] for spec in specs] == list(TrainConfig().to_dict())
    for spec in specs:
        assert spec["doc"], spec["name"]
        assert ("choices" in spec) != ("min" in spec and "max" in spec), spec["name"]
    by_name = {spec["name"]: spec for spec in specs}
    assert by_name["algorithm"]["choices"] == ["dqn", "cem"]
    assert by_name["lr"]["type"] == "float" and by_name["lr"]["min"] == 1e-6
    json.dumps(specs)
