"""Another RL library trains on the env: sb3-contrib's MaskablePPO, through action_masks()."""

import functools

import gymnasium as gym
import numpy as np
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import SubprocVecEnv

# The module-qualified id imports trainer.tetris itself, so a spawned worker that never
# imported it finds the env.
QUALIFIED_ID = "trainer.tetris:tetris_trainer/Tetris-v0"


class IllegalActions(BaseCallback):
    """Counts the steps taken, and those whose action was illegal."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0
        self.illegal = 0

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        self.steps += len(infos)
        self.illegal += sum(bool(info["illegal_action"]) for info in infos)
        return True


def test_maskable_ppo_trains_through_action_masks_in_spawned_workers() -> None:
    make = functools.partial(gym.make, QUALIFIED_ID, width=6, height=10)
    envs = SubprocVecEnv([make, make], start_method="spawn")
    try:
        assert all(mask.dtype == np.bool_ for mask in envs.env_method("action_masks"))
        model = MaskablePPO(
            "MultiInputPolicy", envs, n_steps=256, batch_size=128, n_epochs=2, seed=0, device="cpu"
        )
        counter = IllegalActions()
        model.learn(total_timesteps=2048, callback=counter)
    finally:
        envs.close()
    assert counter.steps >= 2048
    assert counter.illegal == 0  # a 6-wide board has 24 actions and at most 17 legal
