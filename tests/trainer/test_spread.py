"""One cem run over many worker processes: its generations' games in chunks on real
`evaluate` workers, the same weights whoever plays them, a chunk lost with its worker
played again, and nothing left behind."""

import threading
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.utils import timezone

from tests.faults.waiting import kill_pool_processes, wait_for
from tetris_site import stack
from trainer import services
from trainer.models import GameChunk, Metric, Run
from trainer.rl import TrainConfig, train
from trainer.rl.batches import LinearBatch, play_here
from trainer.rl.checkpoint import load_checkpoint
from trainer.runner import run_execute
from trainer.selectors import latest_checkpoint
from trainer.spread import STALE_AFTER, WorkerBatches, game_chunk_execute, recover
from trainer.tetris import BCTS_WEIGHTS

pytestmark = [pytest.mark.django_db(transaction=True)]

# Three generations on a small board, a few games per chunk.
SMALL = {
    "algorithm": "cem",
    "height": 10,
    "seed": 11,
    "cem_population": 12,
    "cem_elite_fraction": 0.25,
    "max_episodes": 12 * 3,
    "piece_cap": 3_000,
    "frames_per_second": 0,
    "checkpoint_every_s": 3_600,
    "eval_every_pieces": 0,
}


def weights_learned_here(tmp_path: Path) -> np.ndarray:
    result = train(TrainConfig(**SMALL), checkpoint_dir=tmp_path)
    return load_checkpoint(result.checkpoint)["state"]["mean"].numpy()


def weights_learned_on_workers(user: object) -> tuple[np.ndarray, list[int]]:
    """Train SMALL with its games on the `evaluate` workers; the final mean weights, and
    the worker processes each generation used."""
    config = {**SMALL, "cem_chunk_games": 2}
    run = services.run_create(owner=user, name="spread", algorithm="cem", config=config)
    run_execute(run_id=run.pk, worker="test", task_id=f"spread-{run.pk}")
    run.refresh_from_db()
    assert run.status == Run.Status.FINISHED, run.error
    assert not GameChunk.objects.filter(run=run).exists(), "every generation's chunks deleted"
    state = load_checkpoint(Path(latest_checkpoint(run).file.path))["state"]
    workers = [
        extra["cem/workers"]
        for extra in Metric.objects.filter(run=run).values_list("extra", flat=True)
        if extra.get("cem/generation") is not None
    ]
    return state["mean"].numpy(), workers[:: SMALL["cem_population"]]


def a_holding_run(user: object) -> Run:
    """A run some process holds (its task id) and beats for, as a chunk's run is."""
    run = services.run_create(owner=user, name="holder", algorithm="cem", config=SMALL)
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.RUNNING,
        task_id="holder",
        heartbeat_at=timezone.now() + timedelta(hours=1),
    )
    return run


@pytest.mark.stack
def test_one_worker_two_or_none_learn_the_same_weights(
    evaluate_worker: stack.Service,
    stack_env: dict[str, str],
    stack_dir: Path,
    tmp_path: Path,
    user: object,
) -> None:
    here = weights_learned_here(tmp_path)
    one, workers = weights_learned_on_workers(user)
    assert workers == [1, 1, 1]
    second = stack.start_worker(
        stack_env,
        name="test-evaluate-second",
        queues="evaluate",
        concurrency=1,
        log_path=stack_dir / "evaluate-second.log",
    )
    try:
        two, workers = weights_learned_on_workers(user)
    finally:
        second.stop(grace=10)
    assert max(workers) == 2, f"both processes played: {workers}"
    assert np.array_equal(one, here) and np.array_equal(two, here)


@pytest.mark.stack
def test_a_chunk_lost_with_its_worker_process_is_played_again(
    evaluate_worker: stack.Service, user: object
) -> None:
    run = a_holding_run(user)
    # BCTS outlives 500,000 pieces almost always: the chunk takes a second or two.
    batch = LinearBatch(10, 20, "uniform", "bcts", 500_000, (5, 6), np.tile(BCTS_WEIGHTS, (2, 1)))
    results = []
    player = WorkerBatches(run.pk, "holder", chunk_games=2)
    waiting = threading.Thread(target=lambda: results.append(player(batch, lambda: True)))
    waiting.start()
    try:
        playing = wait_for(
            lambda: GameChunk.objects.filter(run=run, status="running").first(),
            60,
            "the worker to start the chunk",
        )
        kill_pool_processes(evaluate_worker.process.pid)
        wait_for(
            lambda: GameChunk.objects.filter(pk=playing.pk, attempts=2).exists(),
            30,
            "the chunk to be delivered again",
        )
    finally:
        waiting.join(timeout=120)
    assert results and results[0] is not None
    assert results[0].games == play_here(batch, threads=1, keep_going=lambda: True).games
    assert not GameChunk.objects.exists()


@pytest.mark.stack
def test_chunks_of_a_lost_machine_or_in_no_queue_are_handed_out_again(
    evaluate_worker: stack.Service, user: object
) -> None:
    run = a_holding_run(user)
    batch = LinearBatch(10, 8, "uniform", "bcts", 0, (1, 2), np.tile(BCTS_WEIGHTS, (2, 1)))
    long_ago = timezone.now() - STALE_AFTER - timedelta(minutes=1)
    lost, unsent = GameChunk.objects.bulk_create(
        [
            GameChunk(
                run=run,
                batch="holder:1",
                index=0,
                games=batch.part(0, 1).to_dict(),
                status="running",
                worker="gone/1",
                attempts=1,
                heartbeat_at=long_ago,
            ),
            GameChunk(
                run=run,
                batch="holder:1",
                index=1,
                games=batch.part(1, 2).to_dict(),
                created_at=long_ago,
            ),
        ]
    )
    assert sorted(recover("holder:1")) == sorted([lost.pk, unsent.pk])
    wait_for(
        lambda: GameChunk.objects.filter(batch="holder:1", status="done").count() == 2,
        60,
        "the worker to play both chunks",
    )
    lost.refresh_from_db()
    assert lost.attempts == 2 and lost.worker.startswith(evaluate_worker.extra["hostname"])
    assert recover("holder:1") == []


def test_a_chunk_is_stored_once_and_a_gone_one_not_at_all(user: object) -> None:
    run = a_holding_run(user)
    batch = LinearBatch(10, 8, "uniform", "bcts", 0, (3,), np.tile(BCTS_WEIGHTS, (1, 1)))
    chunk = GameChunk.objects.create(run=run, batch="holder:1", index=0, games=batch.to_dict())
    assert game_chunk_execute(chunk_id=chunk.pk, worker="here/1")
    assert not game_chunk_execute(chunk_id=chunk.pk, worker="here/2")
    chunk.refresh_from_db()
    assert chunk.worker == "here/1" and chunk.attempts == 1
    assert chunk.lines == [play_here(batch, threads=1, keep_going=lambda: True).games[0].lines]
    chunk.delete()
    assert not game_chunk_execute(chunk_id=chunk.pk, worker="here/1")


def test_the_sweep_deletes_the_chunks_no_run_waits_for(user: object) -> None:
    held = a_holding_run(user)
    ended = services.run_create(owner=user, name="ended", algorithm="cem", config=SMALL)
    Run.objects.filter(pk=ended.pk).update(status=Run.Status.FAILED, task_id="ended")
    games = {"seeds": []}
    GameChunk.objects.bulk_create(
        [
            GameChunk(run=held, batch="holder:7", index=0, games=games),
            GameChunk(run=held, batch="lost-attempt:3", index=0, games=games),
            GameChunk(
                run=held,
                batch="holder:2",
                index=0,
                games=games,
                created_at=timezone.now() - timedelta(days=2),
            ),
            GameChunk(run=ended, batch="ended:1", index=0, games=games),
        ]
    )
    assert services.game_chunks_discard() == 3
    assert list(GameChunk.objects.values_list("batch", flat=True)) == ["holder:7"]
    assert services.game_chunks_discard() == 0
