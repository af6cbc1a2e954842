"""Snapshots: viewers arriving together share one read of a run's history, each read
beginning after its callers asked; and over a live daphne, viewers opening a run at once
all get the whole stored history."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live import bridge
from live.names import run_group
from live.protocol import Frame, snapshot_json
from tests.wsclient import open_socket, receive_json, session_and_run
from tetris_site import stack
from trainer.models import Metric
from visualizer.snapshots import SharedReads


class VersionedSource:
    """A read that returns the version current when it began, after a short wait."""

    def __init__(self) -> None:
        self.version = 0
        self.began: list[int] = []
        self.fail = False

    async def read(self, key: object) -> str:
        began = self.version
        self.began.append(began)
        await asyncio.sleep(0.05)
        if self.fail:
            raise RuntimeError("database down")
        return f"{key}@{began}"


def test_callers_during_a_read_share_the_next_one_which_begins_after_they_asked() -> None:
    async def scenario() -> None:
        source = VersionedSource()
        reads = SharedReads(source.read)
        first = asyncio.create_task(reads.get("run.1"))
        await asyncio.sleep(0.01)  # the first read is under way
        source.version = 1  # stored after it began: later callers must see it
        later = [asyncio.create_task(reads.get("run.1")) for _ in range(50)]
        other = asyncio.create_task(reads.get("run.2"))
        assert await first == "run.1@0"
        assert set(await asyncio.gather(*later)) == {"run.1@1"}
        assert await other == "run.2@1"
        assert reads.reads == 3, "one read for the first caller, one for the 50, one for run.2"

    asyncio.run(scenario())


def test_a_caller_leaving_does_not_cancel_the_shared_read_and_errors_reach_every_caller() -> None:
    async def scenario() -> None:
        source = VersionedSource()
        reads = SharedReads(source.read)
        leaving, staying = (asyncio.create_task(reads.get("k")) for _ in range(2))
        await asyncio.sleep(0.01)
        leaving.cancel()
        assert await staying == "k@0"

        source.fail = True
        failing = [asyncio.create_task(reads.get("k")) for _ in range(3)]
        results = await asyncio.gather(*failing, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        source.fail = False
        assert await reads.get("k") == "k@0", "a failed read is not remembered"

    asyncio.run(scenario())


def test_a_snapshot_splices_the_encoded_parts_into_one_json_message() -> None:
    import json

    text = snapshot_json({"run": {"id": 3}}, metrics='{"points":[],"total":0}', frame=None)
    assert json.loads(text) == {
        "type": "snapshot",
        "run": {"id": 3},
        "metrics": {"points": [], "total": 0},
        "frame": None,
    }


@pytest.fixture(scope="module")
def wall_daphne(stack_env: dict[str, str], stack_dir: Path) -> Iterator[stack.Service]:
    """A daphne for a lab's wall of screens, all signed in as one user: no cap on the
    sockets one user may open (MAX_SOCKETS_PER_USER=0)."""
    env = {**stack_env, "MAX_SOCKETS_PER_USER": "0"}
    service = stack.start_daphne(
        env, port=stack.free_port(), log_path=stack_dir / "wall-daphne.log"
    )
    yield service
    service.stop(grace=5)


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_viewers_opening_a_run_at_once_all_get_its_whole_history(
    wall_daphne: stack.Service,
) -> None:
    daphne = wall_daphne
    session, run_id = session_and_run("wall")
    Metric.objects.bulk_create(
        Metric(
            run_id=run_id,
            episode=i,
            lines=i,
            score=10 * i,
            pieces=40,
            reward=float(i),
            placements_per_second=1000.0,
            total_pieces=40 * i,
            wall_time=i / 10,
        )
        for i in range(1, 801)
    )

    async def scenario() -> list[dict]:
        path = f"/ws/runs/{run_id}/"
        # More than the 100 Redis connections a client gets by default, all joining at once.
        sockets = await asyncio.gather(
            *(open_socket(daphne.url, path, session=session) for _ in range(150))
        )
        try:
            return await asyncio.gather(*(receive_json(s, timeout=60) for s in sockets))
        finally:
            await asyncio.gather(*(s.close() for s in sockets))

    snapshots = asyncio.run(scenario())
    for snapshot in snapshots:
        assert snapshot["type"] == "snapshot"
        assert snapshot["run"]["id"] == run_id
        assert snapshot["metrics"]["total"] == 800
        assert [p["episode"] for p in snapshot["metrics"]["points"]] == list(range(1, 801))


async def publish_board(run_id: int, seq: int) -> None:
    """A board from the worker's bridge, numbered and stamped as the publishers do."""
    board = Frame(seq=seq, t=time.time(), episode=1, board="", next="I", lines=0, score=0, pieces=0)
    await asyncio.wrap_future(bridge.publish(run_group(run_id), board))


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_viewers_joining_a_streaming_run_get_no_board_older_than_their_snapshot(
    wall_daphne: stack.Service,
) -> None:
    session, run_id = session_and_run("crowd-while-streaming")

    async def publish(stop: asyncio.Event) -> None:
        seq = 0
        while not stop.is_set():  # 500 boards a second
            seq += 1
            await publish_board(run_id, seq)
            await asyncio.sleep(0.002)

    async def watch(path: str) -> tuple[int, list[int]]:
        socket = await open_socket(wall_daphne.url, path, session=session)
        try:
            snapshot = await receive_json(socket, timeout=60)
            assert snapshot["type"] == "snapshot"
            seqs = []
            while len(seqs) < 20:
                message = await receive_json(socket, timeout=30)
                if message["type"] == "frame":
                    seqs.append(message["seq"])
            return snapshot["frame"]["seq"], seqs
        finally:
            await socket.close()

    async def scenario() -> list[tuple[int, list[int]]]:
        stop = asyncio.Event()
        publisher = asyncio.create_task(publish(stop))
        await asyncio.sleep(0.2)  # the last frame is stored
        try:
            return await asyncio.gather(*(watch(f"/ws/runs/{run_id}/") for _ in range(100)))
        finally:
            stop.set()
            await publisher

    for snapshot_seq, seqs in asyncio.run(scenario()):
        # Boards that arrived while the snapshot was read are superseded by its frame, and
        # latest-only: never an older board after a newer one.
        assert seqs[0] > snapshot_seq, (snapshot_seq, seqs[:5])
        assert seqs == sorted(set(seqs)), seqs


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_run_that_resumes_numbering_its_boards_from_one_reaches_a_viewer_at_once(
    live_daphne: stack.Service,
) -> None:
    session, run_id = session_and_run("resumed-numbering")

    async def scenario() -> tuple[int, int]:
        await publish_board(run_id, 5000)  # the stopped run's last board
        socket = await open_socket(live_daphne.url, f"/ws/runs/{run_id}/", session=session)
        try:
            snapshot = await receive_json(socket, timeout=30)
            await publish_board(run_id, 1)  # the resumed run's first
            frame = await receive_json(socket, timeout=10)
            return snapshot["frame"]["seq"], frame["seq"]
        finally:
            await socket.close()

    assert asyncio.run(scenario()) == (5000, 1)
