"""The lease's side thread: it beats while the training loop makes progress, and stops
beating once the loop hangs, so the sweep ends the run (a heartbeat from a thread must
not hide a loop that hangs)."""

import time
from datetime import timedelta

import pytest

from trainer import lease, queues, services
from trainer.lease import RunLease
from trainer.models import Run

pytestmark = pytest.mark.django_db(transaction=True)  # the thread has a connection of its own


def heartbeat(run_id: int) -> object:
    return Run.objects.values_list("heartbeat_at", flat=True).get(pk=run_id)


def test_the_heartbeat_stops_when_the_loop_stops_making_progress(
    user: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease, "HEARTBEAT_SECONDS", 0.2)
    # No worker runs the task here; that the sweep kills it is tested with real workers.
    monkeypatch.setattr(queues, "terminate", lambda task_id: None)
    run = services.run_create(owner=user, name="hangs")
    run.mark_running(worker="here", task_id="t1")
    held = RunLease(run.pk, "t1", hang_seconds=1.0).start()
    try:
        # The loop makes progress: the thread beats.
        first = heartbeat(run.pk)
        for _ in range(8):
            held.check()
            time.sleep(0.1)
        beating = heartbeat(run.pk)
        assert beating > first

        # The loop hangs (no more check()): past hang_seconds, the beats stop.
        time.sleep(1.5)
        stalled = heartbeat(run.pk)
        time.sleep(0.8)
        assert heartbeat(run.pk) == stalled
        assert held.lost is False  # it still holds the run: the sweep decides

        assert services.run_reap(stale_after=timedelta(seconds=0.5)) == [run.pk]
        run.refresh_from_db()
        assert run.status == Run.Status.FAILED and run.error.startswith("worker lost")
        time.sleep(0.8)  # the thread's next poll sees that the run is no longer its own
        assert held.lost
    finally:
        held.close()
