"""Training configuration: a validated dataclass, named presets, and field specs for forms."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import math
from dataclasses import dataclass
from typing import Any

ALGORITHMS = ("dqn", "cem")
RANDOMIZERS = ("uniform", "bag7")
DQN_FEATURES = ("classic", "dellacherie", "bcts", "bcts+classic")
# Inputs of each value-net feature set (trainer.rl.features has the names; a test checks
# these counts against it, so that validating a config never loads the engine).
DQN_FEATURE_COUNTS = {"classic": 4, "dellacherie": 6, "bcts": 8, "bcts+classic": 11}
# The engine feature sets cem can weigh (a test checks they are the engine's).
CEM_FEATURES = ("bcts", "dt")
# How cem moves its search distribution from one generation to the next.
CEM_METHODS = ("cross_entropy", "cma_es")
# The replay buffer fills to this at most: a run must not take a shared machine's memory.
MAX_REPLAY_BYTES = 2 * 1024**3
# Training games in one cem generation: each is a game in memory and, once over, a metric.
MAX_CEM_GAMES_PER_GENERATION = 50_000


def replay_bytes_per_transition(features: str, width: int) -> int:
    """Memory of one replay transition: its afterstate and every afterstate after it."""
    n, actions = DQN_FEATURE_COUNTS[features], 4 * width  # float16 features, int8 lines
    return 2 * n + actions * (2 * n + 1) + 2


class ConfigError(ValueError):
    """A configuration that cannot run; `errors` maps each bad field to what it allows."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


def _spec(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field whose metadata holds its allowed range or choices."""
    return dataclasses.field(
        default=default, metadata={"low": low, "high": high, "choices": choices}
    )


@dataclass
class TrainConfig:
    """Everything that defines a training run; validated on construction."""

    # --- the run ---
    algorithm: str = _spec("dqn", choices=ALGORITHMS)
    """learner: `dqn` (afterstate value network) or `cem` (noisy cross-entropy, linear weights)"""
    seed: int = _spec(1, low=0, high=2**31 - 1)
    """seed of the training games and of every random choice of the learner"""
    width: int = _spec(10, low=4, high=20)
    """board width in cells"""
    height: int = _spec(20, low=6, high=40)
    """board height in cells"""
    randomizer: str = _spec("uniform", choices=RANDOMIZERS)
    """piece sequence: `uniform` (independent pieces, the research standard) or `bag7`"""
    piece_cap: int = _spec(20_000, low=0, high=10**9)
    """pieces after which a training game ends (0 = none); cem: the largest cap it may grow to"""
    max_minutes: float = _spec(0.0, low=0.0, high=60.0 * 24 * 30)
    """wall-clock budget in minutes (0 = no limit)"""
    max_episodes: int = _spec(0, low=0, high=10**12)
    """training games to play (0 = no limit)"""
    max_pieces: int = _spec(0, low=0, high=10**15)
    """placements to play in training games (0 = no limit)"""
    frames_per_second: float = _spec(15.0, low=0.0, high=60.0)
    """live board frames sent to callbacks per second (0 = off)"""
    checkpoint_every_s: float = _spec(60.0, low=1.0, high=86_400.0)
    """seconds between checkpoints (one more is written when the run ends)"""
    eval_every_pieces: int = _spec(50_000, low=0, high=10**15)
    """training placements between evaluations of the greedy policy on held-out seeds; the
    best-evaluated policy is kept as the run's `best` checkpoint (0 = never)"""
    eval_games: int = _spec(10, low=1, high=1_000)
    """games each periodic evaluation plays"""
    eval_piece_cap: int = _spec(10_000, low=1, high=10**9)
    """pieces after which a periodic evaluation game is cut (its interval counts it as
    censored: it would have gone on)"""
    threads: int = _spec(2, low=1, high=256)
    """CPU threads, never processes: dqn learns on a second thread while games play (1 = one
    thread, same results); cem plays its games on this many threads"""

    # --- dqn: afterstate value network ---
    features: str = _spec("bcts+classic", choices=DQN_FEATURES)
    """afterstate features the value network reads (MDPTetris definitions)"""
    hidden_size: int = _spec(64, low=4, high=1024)
    """width of the value network's two hidden layers"""
    lr: float = _spec(1e-3, low=1e-6, high=0.1)
    """Adam learning rate"""
    lr_final: float = _spec(1e-4, low=1e-7, high=0.1)
    """learning rate reached after `lr_decay_pieces` placements (annealed linearly)"""
    lr_decay_pieces: int = _spec(1_000_000, low=1, high=10**12)
    """placements over which the learning rate anneals from `lr` to `lr_final`"""
    gamma: float = _spec(0.99, low=0.0, high=0.9999)
    """discount factor per placement"""
    num_envs: int = _spec(8, low=1, high=256)
    """training games played in lockstep; their afterstates share one forward pass"""
    buffer_size: int = _spec(100_000, low=100, high=5_000_000)
    """replay buffer capacity in transitions"""
    replay_endings: int = _spec(20_000, low=0, high=1_000_000)
    """transitions kept apart from the replay buffer: the last placements before each lost
    game, so that a good agent's long games never crowd out what losing looks like (0 = off)"""
    batch_size: int = _spec(128, low=1, high=8192)
    """transitions per gradient update"""
    learning_starts: int = _spec(2_000, low=0, high=10**9)
    """placements played before the first gradient update"""
    train_every: int = _spec(8, low=1, high=10_000)
    """placements between gradient updates"""
    target_tau: float = _spec(0.01, low=0.0001, high=1.0)
    """soft-update rate of the target network per gradient update"""
    epsilon_start: float = _spec(0.05, low=0.0, high=1.0)
    """probability of a random placement at the start"""
    epsilon_end: float = _spec(0.0, low=0.0, high=1.0)
    """probability of a random placement after `epsilon_decay_pieces`"""
    epsilon_decay_pieces: int = _spec(50_000, low=1, high=10**12)
    """placements over which epsilon anneals linearly"""
    max_grad_norm: float = _spec(10.0, low=0.01, high=1e6)
    """gradient norm clip"""
    inject_nan_at_update: int = _spec(0, low=0, high=10**12)
    """fault injection for tests: poison this gradient update's loss with NaN (0 = never)"""

    # --- cem: noisy cross-entropy over linear weights of afterstate features ---
    cem_population: int = _spec(100, low=4, high=10_000)
    """weight vectors sampled per generation"""
    cem_elite_fraction: float = _spec(0.1, low=0.01, high=0.5)
    """fraction of the population the next distribution is fitted to"""
    cem_games_per_sample: int = _spec(1, low=1, high=1000)
    """training games each sampled weight vector plays per generation"""
    cem_initial_std: float = _spec(10.0, low=0.01, high=1e4)
    """standard deviation of every weight in the first generation (mean starts at 0)"""
    cem_noise: float = _spec(4.0, low=0.0, high=1e4)
    """variance added to every weight after each fit, so selection keeps exploring"""
    cem_noise_decay_generations: int = _spec(0, low=0, high=10**9)
    """generations over which the added noise decays linearly to 0 (0 = constant noise)"""
    cem_noise_floor: float = _spec(0.0, low=0.0, high=10.0)
    """least standard deviation of every weight, as a fraction of the root mean square of
    the mean weights, so the search never freezes (0 = none; a greedy policy depends only
    on the direction of its weights, hence relative)"""
    cem_train_height: int = _spec(0, low=0, high=40)
    """training board height (0 = `height`, at most `height`): a lower board is harder, so
    selection still ranks agents that would outlive any affordable cap on the full board"""
    cem_cap_growth: float = _spec(4.0, low=1.0, high=1e6)
    """each generation's piece cap is this many times the previous elite's median game length,
    so that few samples ever reach it"""
    cem_chunk_games: int = _spec(0, low=0, high=10_000)
    """games per task when a generation is spread over the Celery workers of the `evaluate`
    queue, on any machine (0 = the run's own process plays them all, on `threads` threads);
    the same seed learns the same weights however many workers play"""
    cem_method: str = _spec("cross_entropy", choices=CEM_METHODS)
    """how each generation moves the search: `cross_entropy` refits a Gaussian to the elite
    and adds `cem_noise`; `cma_es` (Hansen's CMA-ES, recombining the elite) adapts its own
    step size and correlations, so the noise settings do not apply to it"""
    cem_features: str = _spec("bcts", choices=CEM_FEATURES)
    """features cem weighs (MDPTetris definitions): `bcts`, Thiéry & Scherrer's 8, or `dt`,
    those 8 and pattern diversity, the 9 of the DT-20 controller (Scherrer et al., 2015)"""

    def __post_init__(self) -> None:
        errors: dict[str, str] = {}
        for field in dataclasses.fields(self):
            try:
                setattr(self, field.name, _coerce(field, getattr(self, field.name)))
            except ValueError as error:
                errors[field.name] = str(error)
        if not errors:
            errors.update(self._cross_field_errors())
        if errors:
            raise ConfigError(errors)

    def _cross_field_errors(self) -> dict[str, str]:
        errors = {}
        if self.epsilon_end > self.epsilon_start:
            errors["epsilon_end"] = (
                f"must be at most epsilon_start ({self.epsilon_start}), got {self.epsilon_end}"
            )
        if self.lr_final > self.lr:
            errors["lr_final"] = f"must be at most lr ({self.lr}), got {self.lr_final}"
        if self.batch_size > self.buffer_size:
            errors["batch_size"] = (
                f"must be at most buffer_size ({self.buffer_size}), got {self.batch_size}"
            )
        per_transition = replay_bytes_per_transition(self.features, self.width)
        transitions = self.buffer_size + self.replay_endings
        if self.algorithm == "dqn" and transitions * per_transition > MAX_REPLAY_BYTES:
            largest = MAX_REPLAY_BYTES // per_transition - self.replay_endings
            errors["buffer_size"] = (
                f"must be at most {largest:,} with replay_endings {self.replay_endings:,} and "
                f"{self.features} "
                f"features on a board {self.width} wide (each transition takes "
                f"{per_transition:,} bytes; the buffer may use {MAX_REPLAY_BYTES // 1024**3} "
                f"GiB), got {self.buffer_size:,}"
            )
        games = self.cem_population * self.cem_games_per_sample
        if self.algorithm == "cem" and games > MAX_CEM_GAMES_PER_GENERATION:
            errors["cem_games_per_sample"] = (
                f"cem_population * cem_games_per_sample must be at most "
                f"{MAX_CEM_GAMES_PER_GENERATION:,} games per generation, got {games:,}"
            )
        if 0 < self.cem_train_height < 6:
            errors["cem_train_height"] = f"must be 0 or at least 6, got {self.cem_train_height}"
        if round(self.cem_population * self.cem_elite_fraction) < 2:
            errors["cem_elite_fraction"] = (
                "cem_population * cem_elite_fraction must keep at least 2 elite samples"
            )
        return errors

    @classmethod
    def from_preset(cls, preset: str = "quick", overrides: dict | None = None) -> TrainConfig:
        """The named preset with `overrides` applied on top."""
        if preset not in PRESETS:
            raise ConfigError(
                {"preset": f"must be one of {', '.join(PRESETS)}, got {_shown(preset)}"}
            )
        return cls.from_dict({**PRESETS[preset], **(overrides or {})})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from a mapping of field names (unknown names are errors)."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = {key: "unknown setting" for key in values if key not in names}
        if unknown:
            raise ConfigError(unknown)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Field values as a JSON-safe dict."""
        return dataclasses.asdict(self)

    @staticmethod
    def parse_overrides(items: list[str]) -> dict[str, Any]:
        """Parse `key=value` strings into a dict of typed field values."""
        fields = {field.name: field for field in dataclasses.fields(TrainConfig)}
        values, errors = {}, {}
        for item in items:
            key, sep, text = item.partition("=")
            key = key.strip()
            if not sep or not key:
                errors[key or item] = f"expected key=value, got {_shown(item)}"
            elif key not in fields:
                errors[key] = "unknown setting"
            else:
                try:
                    values[key] = _coerce(fields[key], text.strip())
                except ValueError as error:
                    errors[key] = str(error)
        if errors:
            raise ConfigError(errors)
        return values

    @classmethod
    def field_specs(cls) -> list[dict[str, Any]]:
        """Name, type, default, doc and allowed range or choices of every field."""
        docs = _attribute_docs(cls)
        specs = []
        for field in dataclasses.fields(cls):
            spec: dict[str, Any] = {
                "name": field.name,
                "type": field.type,
                "default": field.default,
                "doc": docs.get(field.name, ""),
            }
            if field.metadata["choices"]:
                spec["choices"] = list(field.metadata["choices"])
            else:
                spec["min"], spec["max"] = field.metadata["low"], field.metadata["high"]
            specs.append(spec)
        return specs


def _coerce(field: dataclasses.Field, value: Any) -> Any:
    """Convert `value` (typed, or a string from a form or the command line) to the field's type."""
    low, high, choices = field.metadata["low"], field.metadata["high"], field.metadata["choices"]
    if field.type == "str":
        if choices and value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {_shown(value)}")
        return value
    if field.type == "int":
        allowed = f"must be an integer between {int(low)} and {int(high)}"
    else:
        allowed = f"must be a number between {low:.15g} and {high:.15g}"
    try:
        number = _parse_number(value)
    except ValueError:
        raise ValueError(f"{allowed}, got {_shown(value)}") from None
    if field.type == "int":
        if number != int(number):
            raise ValueError(f"{allowed}, got {_shown(value)}")
        number = int(number)
    else:
        number = float(number)
    if not low <= number <= high:
        raise ValueError(f"{allowed}, got {_shown(value)}")
    return number


def _shown(value: Any, limit: int = 60) -> str:
    """The value as the message quotes it, cut short: a message must not echo a megabyte."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _parse_number(value: Any) -> float | int:
    """A finite int or float from a number or its text (bools are not numbers here)."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            value = int(text)
        except ValueError:
            value = float(text)
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(value)
    return value


@functools.cache
def _attribute_docs(cls: type) -> dict[str, str]:
    """The string literal under each field of a dataclass, as CleanRL's Args are documented."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


# Fields a resumed run must share with its checkpoint: they shape the saved state.
STATE_SHAPING = ("algorithm", "width", "height", "features", "hidden_size")

PRESETS: dict[str, dict[str, Any]] = {
    # dqn that clears thousands of lines within a couple of minutes on two cores
    # Every preset ends by itself (a run trains until a budget is spent or it is stopped).
    "quick": {"algorithm": "dqn", "max_minutes": 30.0},
    # dqn with a longer schedule and a bigger network
    "standard": {
        "algorithm": "dqn",
        "max_minutes": 240.0,
        "hidden_size": 128,
        "lr_decay_pieces": 5_000_000,
        "buffer_size": 300_000,
        # its policies outlive 10,000 pieces early: a longer cap ranks them, and rarer
        # evaluations keep their cost near a tenth of the run
        "eval_every_pieces": 500_000,
        "eval_piece_cap": 50_000,
    },
    # the long cross-entropy run after the published records: trained on a 13-row board,
    # where a good agent's games last tens of thousands of lines instead of tens of millions
    "record": {
        "algorithm": "cem",
        "piece_cap": 0,
        "max_minutes": 60.0,
        "cem_train_height": 13,
        "cem_noise_decay_generations": 120,
        # a policy of millions of lines: a long cap, so every few minutes
        "eval_every_pieces": 500_000_000,
        "eval_piece_cap": 1_000_000,
    },
}
