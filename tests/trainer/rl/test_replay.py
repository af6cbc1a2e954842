"""The replay buffer: its main ring, and the ends of lost games that long games cannot push out."""

import numpy as np

from trainer.rl import Callback, EpisodeMetrics, TrainConfig, train
from trainer.rl.replay import ReplayBuffer

FEATURES, ACTIONS = 3, 4


def transition(value: float, ended: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An afterstate whose features are all `value`, with two next afterstates (or none)."""
    after = np.empty((0, FEATURES)) if ended else np.full((2, FEATURES), value + 0.5)
    return np.full(FEATURES, value), after, np.zeros(len(after), np.int8)


def sampled_values(buffer: ReplayBuffer, draws: int = 4_000) -> np.ndarray:
    features, _, _, _ = buffer.sample(draws, np.random.default_rng(0))
    return features[:, 0].numpy()


def test_kept_endings_outlive_the_main_ring() -> None:
    buffer = ReplayBuffer(
        capacity=10, num_features=FEATURES, max_actions=ACTIONS, endings_capacity=4
    )
    lost_game = [buffer.add(*transition(100 + i, ended=i == 2)) for i in range(3)]
    buffer.keep_ending(lost_game)
    for i in range(50):  # a long game overwrites the main ring five times
        buffer.add(*transition(i))
    values = set(sampled_values(buffer))
    assert {100.0, 101.0, 102.0} <= values  # the lost game's end is still drawn
    assert values - {100.0, 101.0, 102.0} == {float(i) for i in range(40, 50)}
    # The terminal transition kept its "no next afterstate".
    _, _, _, valid = buffer.sample(4_000, np.random.default_rng(1))
    assert not valid.any(dim=1).all()


def test_endings_ring_keeps_the_newest_and_draws_in_proportion() -> None:
    buffer = ReplayBuffer(
        capacity=30, num_features=FEATURES, max_actions=ACTIONS, endings_capacity=10
    )
    for game in range(5):  # five lost games of 4 placements: the ring holds the last 10
        rows = [buffer.add(*transition(10 * game + i)) for i in range(4)]
        buffer.keep_ending(rows)
    assert buffer.endings_size == 10
    kept = buffer.features[30:, 0].astype(float)
    assert sorted(kept) == [22.0, 23.0, 30.0, 31.0, 32.0, 33.0, 40.0, 41.0, 42.0, 43.0]
    values = sampled_values(buffer)
    share_of_endings = np.isin(values, kept).mean()
    # 20 main rows + 10 ending rows, the ending rows' values also in the main ring
    assert abs(share_of_endings - 20 / 30) < 0.05


def test_without_endings_sampling_is_unchanged() -> None:
    plain = ReplayBuffer(capacity=20, num_features=FEATURES, max_actions=ACTIONS)
    off = ReplayBuffer(capacity=20, num_features=FEATURES, max_actions=ACTIONS, endings_capacity=0)
    for i in range(15):
        plain.add(*transition(i))
        off.keep_ending([off.add(*transition(i))])
    assert np.array_equal(sampled_values(plain), sampled_values(off))


class Losses(Callback):
    def __init__(self) -> None:
        self.episodes: list[EpisodeMetrics] = []

    def on_episode(self, m: EpisodeMetrics) -> None:
        self.episodes.append(m)


def test_dqn_run_with_and_without_endings_is_deterministic_and_differs() -> None:
    short = {"max_pieces": 4_000, "learning_starts": 500, "frames_per_second": 0.0}
    runs = {}
    for name, endings in (("on", 2_000), ("again", 2_000), ("off", 0)):
        recorder = Losses()
        train(
            TrainConfig.from_preset("quick", {**short, "replay_endings": endings}),
            callbacks=[recorder],
        )
        runs[name] = [(m.lines, m.loss) for m in recorder.episodes]
    assert runs["on"] == runs["again"]
    assert runs["on"] != runs["off"]  # the kept endings change the batches
