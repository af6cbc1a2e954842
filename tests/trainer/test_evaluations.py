"""Requested evaluations: chunks on real `evaluate` workers, redone when a worker is lost,
never counted twice, with the same games and interval as one process would play."""

import json
from datetime import timedelta

import pytest
import torch
from django.test import Client
from django.utils import timezone

from tests.faults.waiting import kill_pool_processes, wait_for
from tetris_site import stack
from trainer import services
from trainer.evaluator import chunk_execute
from trainer.models import Checkpoint, Evaluation, EvaluationChunk, Run
from trainer.rl import TrainConfig
from trainer.rl.checkpoint import save_checkpoint
from trainer.rl.evaluation import evaluate, evaluation_seeds
from trainer.tetris import DELLACHERIE_WEIGHTS

pytestmark = [pytest.mark.django_db(transaction=True)]


def run_with_linear_checkpoint(owner: object, *, height: int, kind: str = "best") -> Run:
    """A run whose checkpoint is Dellacherie's controller, written as training writes one."""
    config = TrainConfig.from_preset("record", {"height": height})
    run = services.run_create(
        owner=owner, name="linear", algorithm="cem", preset="record", config=config.to_dict()
    )
    Run.objects.filter(pk=run.pk).update(status=Run.Status.FINISHED)
    path = services.run_media_dir(run.pk) / f"{kind}-episode-000000001.pt"
    policy = {
        "kind": "linear",
        "feature_set": "dellacherie",
        "weights": torch.tensor(DELLACHERIE_WEIGHTS),
    }
    save_checkpoint(
        {"config": config.to_dict(), "progress": {}, "state": None, "policy": policy}, path
    )
    Checkpoint.objects.create(
        run=run,
        kind=kind,
        file=str(path.relative_to(services.run_media_dir(run.pk).parent.parent)),
        episode=1,
        total_pieces=10,
        wall_time=1.0,
    )
    return run


def test_chunks_played_here_give_the_games_one_process_plays(user: object) -> None:
    run = run_with_linear_checkpoint(user, height=10)
    evaluation = services.evaluation_start(
        run=run, user=user, games=100, piece_cap=2_000, enqueue=False
    )
    chunks = list(evaluation.chunks.order_by("index"))
    assert len(chunks) <= services.MAX_EVALUATION_CHUNKS
    assert [c.first_game for c in chunks] == list(range(0, 100, 2))
    assert sum(c.games for c in chunks) == 100
    for chunk in chunks:
        assert chunk_execute(chunk_id=chunk.pk, worker="here")
    evaluation.refresh_from_db()
    whole = evaluate("dellacherie", games=100, piece_cap=2_000, height=10)
    assert evaluation.status == "done" and evaluation.games_done == 100
    lines = [value for c in evaluation.chunks.order_by("index") for value in c.lines]
    assert lines == whole.lines
    assert evaluation.mean_lines == pytest.approx(whole.mean_lines)
    assert (evaluation.ci95_low, evaluation.ci95_high) == pytest.approx(
        (whole.ci95_low, whole.ci95_high)
    )
    assert evaluation.ended == whole.ended


def test_a_chunk_delivered_twice_counts_once(user: object) -> None:
    run = run_with_linear_checkpoint(user, height=8)
    evaluation = services.evaluation_start(run=run, user=user, games=2, piece_cap=0, enqueue=False)
    first, second = evaluation.chunks.order_by("index")
    assert chunk_execute(chunk_id=first.pk, worker="a")
    assert not chunk_execute(chunk_id=first.pk, worker="b")  # a second delivery
    # ... even one that began before the first stored its games:
    EvaluationChunk.objects.filter(pk=second.pk).update(status="running")
    assert chunk_execute(chunk_id=second.pk, worker="a")
    assert not services.evaluation_chunk_finish(
        chunk=second, lines=[10**6], pieces=[1], ended=[True], seconds=0.0
    )
    evaluation.refresh_from_db()
    assert evaluation.games_done == 2 and evaluation.max_lines < 10**6


def test_bad_requests_are_refused_and_create_nothing(user: object, other_user: object) -> None:
    run = run_with_linear_checkpoint(user, height=8)
    client = Client()
    client.force_login(user)
    for body in ({"games": 0}, {"games": 10_001}, {"piece_cap": -1}, {"checkpoint": "worst"}):
        response = client.post(
            f"/api/runs/{run.pk}/evaluations", json.dumps(body), content_type="application/json"
        )
        assert response.status_code in (400, 422), (body, response.content)
    client.force_login(other_user)
    response = client.post(
        f"/api/runs/{run.pk}/evaluations", json.dumps({}), content_type="application/json"
    )
    assert response.status_code == 404  # private: not even its existence
    untrained = services.run_create(owner=user, name="untrained")
    client.force_login(user)
    response = client.post(
        f"/api/runs/{untrained.pk}/evaluations", json.dumps({}), content_type="application/json"
    )
    assert response.status_code == 400 and "checkpoint" in response.json()["errors"]
    assert not Evaluation.objects.exists()


@pytest.mark.stack
def test_api_evaluation_runs_on_the_evaluate_worker(
    evaluate_worker: stack.Service, user: object
) -> None:
    run = run_with_linear_checkpoint(user, height=10)
    client = Client()
    client.force_login(user)
    response = client.post(
        f"/api/runs/{run.pk}/evaluations",
        json.dumps({"games": 20, "piece_cap": 5_000}),
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    evaluation_id = response.json()["id"]
    assert response.json()["status"] == "running"

    def done() -> dict | None:
        listed = client.get(f"/api/runs/{run.pk}/evaluations").json()["evaluations"]
        found = [e for e in listed if e["id"] == evaluation_id and e["status"] == "done"]
        return found[0] if found else None

    result = wait_for(done, 120, "the evaluate worker to play every chunk")
    whole = evaluate("dellacherie", games=20, piece_cap=5_000, height=10)
    assert result["games_done"] == 20
    assert result["mean_lines"] == pytest.approx(whole.mean_lines)
    assert result["ci95_low"] == pytest.approx(whole.ci95_low)
    workers = set(EvaluationChunk.objects.values_list("worker", flat=True))
    assert workers == {evaluate_worker.extra["hostname"]}


@pytest.mark.stack
def test_a_chunk_lost_with_its_worker_process_is_done_again(
    evaluate_worker: stack.Service, user: object
) -> None:
    """SIGKILL of the worker process that plays a chunk: the chunk is delivered again."""
    run = run_with_linear_checkpoint(user, height=20)
    # Dellacherie outlives 1M pieces almost always: each game takes a second or two.
    evaluation = services.evaluation_start(run=run, user=user, games=2, piece_cap=1_000_000)
    playing = wait_for(
        lambda: EvaluationChunk.objects.filter(evaluation=evaluation, status="running").first(),
        60,
        "a chunk to start",
    )
    kill_pool_processes(evaluate_worker.process.pid)

    def finished() -> Evaluation | None:
        evaluation.refresh_from_db()
        return evaluation if evaluation.status != "running" else None

    # Delivered again at once, long before the sweep would find the chunk's heartbeat stale.
    assert services.CHUNK_STALE_AFTER.total_seconds() >= 60
    wait_for(finished, 40, "the evaluation to finish after the kill")
    assert evaluation.status == "done" and evaluation.games_done == 2
    playing.refresh_from_db()
    assert playing.attempts == 2 and playing.status == "done"
    lines = [v for c in evaluation.chunks.order_by("index") for v in c.lines]
    whole = evaluate("dellacherie", seeds=evaluation_seeds(2), piece_cap=1_000_000)
    assert lines == whole.lines


@pytest.mark.stack
def test_the_sweep_hands_out_chunks_of_a_lost_machine_again(
    evaluate_worker: stack.Service, user: object
) -> None:
    """A chunk marked running long ago by a worker that is gone (no redelivery will come)."""
    run = run_with_linear_checkpoint(user, height=8)
    evaluation = services.evaluation_start(run=run, user=user, games=1, piece_cap=0, enqueue=False)
    chunk = evaluation.chunks.get()
    long_ago = timezone.now() - timedelta(hours=1)
    EvaluationChunk.objects.filter(pk=chunk.pk).update(
        status="running", worker="gone@elsewhere", heartbeat_at=long_ago, attempts=1
    )
    assert services.evaluation_chunks_requeue_lost(stale_after=timedelta(seconds=60)) == [chunk.pk]
    assert services.evaluation_chunks_requeue_lost(stale_after=timedelta(seconds=60)) == []
    wait_for(
        lambda: Evaluation.objects.get(pk=evaluation.pk).status == "done",
        60,
        "the worker to play the chunk handed out again",
    )
    chunk.refresh_from_db()
    assert chunk.attempts == 2 and chunk.worker == evaluate_worker.extra["hostname"]


@pytest.mark.stack
def test_the_sweep_sends_again_chunks_whose_enqueue_never_ran(
    evaluate_worker: stack.Service, user: object
) -> None:
    """An evaluation whose chunks were never queued (Redis down at its commit, or the
    process gone between the commit and the enqueue): the sweep sends them and they play."""
    run = run_with_linear_checkpoint(user, height=8)
    evaluation = services.evaluation_start(run=run, user=user, games=2, piece_cap=0, enqueue=False)
    chunk_ids = set(evaluation.chunks.values_list("pk", flat=True))
    assert services.evaluation_chunks_requeue_unsent(after=timedelta(seconds=60)) == []  # young
    Evaluation.objects.filter(pk=evaluation.pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    # The workers' own sweeps may send some first: between us, every chunk goes out.
    assert set(services.evaluation_chunks_requeue_unsent(after=timedelta(seconds=60))) <= (
        chunk_ids
    )
    wait_for(
        lambda: Evaluation.objects.get(pk=evaluation.pk).status == "done",
        60,
        "the worker to play the chunks sent again",
    )
    assert services.evaluation_chunks_requeue_unsent(after=timedelta(seconds=60)) == []


def test_only_chunks_in_no_queue_are_sent_again(
    user: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_with_linear_checkpoint(user, height=8)
    evaluation = services.evaluation_start(run=run, user=user, games=2, piece_cap=0, enqueue=False)
    Evaluation.objects.filter(pk=evaluation.pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    waiting, unsent = evaluation.chunks.order_by("pk")
    # The broker, as queues reads it: the first chunk's task waits in the evaluate queue.
    monkeypatch.setattr(
        services.queues, "waiting_task_ids", lambda queue: {f"evaluation-chunk-{waiting.pk}"}
    )
    sent: list[tuple] = []
    monkeypatch.setattr(
        services.queues, "enqueue", lambda task, *args, task_id: sent.append((args, task_id))
    )
    assert services.evaluation_chunks_requeue_unsent(after=timedelta(seconds=60)) == [unsent.pk]
    assert sent == [((unsent.pk,), f"evaluation-chunk-{unsent.pk}")]
