"""Where live messages go: the groups viewers join and the Redis names that carry them."""

from __future__ import annotations

# Subscribed for as long as a hub runs, so its connection always has a subscription to
# listen on, even between viewers.
IDLE_CHANNEL = "tetris:stream:-"


def run_group(run_id: int) -> str:
    """The group of everyone watching a run."""
    return f"run.{run_id}"


def run_plays_group(run_id: int) -> str:
    """The group of everyone watching one of a run's checkpoints play."""
    return f"run.{run_id}.plays"


def play_group(token: str) -> str:
    """The group of everyone watching one play."""
    return f"play.{token}"


def experiment_group(experiment_id: int) -> str:
    """The group of everyone watching an experiment."""
    return f"experiment.{experiment_id}"


def stream_channel(group: str) -> str:
    """The Redis pub/sub channel that carries a group's messages to the web processes."""
    return f"tetris:stream:{group}"


def last_frame_key(group: str) -> str:
    """The Redis key that holds a group's latest frame, as published."""
    return f"tetris:last-frame:{group}"


def overlay_key(group: str) -> str:
    """The Redis key that exists while a viewer of the group has the overlay on: the
    worker adds the policy's options to the group's frames only then."""
    return f"tetris:overlay:{group}"


def sockets_key(owner: str) -> str:
    """The Redis sorted set of one user's open live sockets, across web processes: each
    socket's id, scored by when its process last said it was open."""
    return f"tetris:sockets:{owner}"
