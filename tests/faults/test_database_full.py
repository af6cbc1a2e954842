"""The database's disk fills up while a run trains (SQLite's own "database or disk is
full", from a page limit on the training thread's connection, then lifted): training goes
on, the rows wait in memory, and once there is room every episode is stored exactly once."""

import time

import pytest
from django.db import connection
from django.db.models import Count, Max, Min

from trainer import services
from trainer.models import Metric, Run
from trainer.recording import FLUSH_SECONDS
from trainer.rl.events import Callback, EpisodeMetrics
from trainer.runner import run_execute

pytestmark = pytest.mark.django_db(transaction=True)

EPISODES = 400


class DiskFillsThenFrees(Callback):
    """Fills the database's disk at episode `full_at` and frees it at `free_at`."""

    def __init__(self, full_at: int, free_at: int) -> None:
        self.full_at, self.free_at = full_at, free_at
        self.limit_before = 0
        self.refused = 0

    def on_episode(self, m: EpisodeMetrics) -> None:
        with connection.cursor() as cursor:
            if m.episode == self.full_at:
                cursor.execute("PRAGMA max_page_count")
                self.limit_before = cursor.fetchone()[0]
                # Free pages inside the file are room too: fill them first.
                cursor.execute("PRAGMA freelist_count")
                free = cursor.fetchone()[0]
                cursor.execute("PRAGMA page_size")
                page_size = cursor.fetchone()[0]
                cursor.execute("CREATE TABLE fault_filler (b BLOB)")
                if free:
                    cursor.execute(
                        "INSERT INTO fault_filler VALUES (zeroblob(%s))", [free * page_size]
                    )
                cursor.execute("PRAGMA page_count")
                pages = cursor.fetchone()[0]
                cursor.execute(f"PRAGMA max_page_count = {pages}")  # not one page more
            elif m.episode == self.free_at - 1:
                # A write is due by the next episode's, whatever the speed of this machine:
                # it meets the full disk.
                time.sleep(FLUSH_SECONDS + 0.1)
            elif m.episode == self.free_at:
                cursor.execute(f"PRAGMA max_page_count = {self.limit_before}")
                cursor.execute("DROP TABLE fault_filler")


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's page limit is the fault")
def test_a_full_database_disk_loses_no_metric_and_the_run_goes_on(
    user: object, caplog: pytest.LogCaptureFixture, settings: object
) -> None:
    settings.MAX_METRIC_ROWS_PER_SECOND = 0  # every episode a row, however fast
    config = {
        "max_minutes": 0.0,
        "max_episodes": EPISODES,
        "cem_population": 20,
        "cem_train_height": 8,
        "frames_per_second": 0.0,
        "checkpoint_every_s": 3600,
        "threads": 1,
    }
    run = services.run_create(
        owner=user, name="full disk", algorithm="cem", preset="record", config=config
    )
    fault = DiskFillsThenFrees(full_at=20, free_at=EPISODES - 20)
    run_execute(run_id=run.pk, worker="here", extra_callbacks=[fault])

    assert "could not write metrics" in caplog.text  # the disk was full for a while
    run.refresh_from_db()
    assert run.status == Run.Status.FINISHED, run.error
    assert run.episodes == EPISODES
    stored = Metric.objects.filter(run=run).aggregate(
        n=Count("id"), lo=Min("episode"), hi=Max("episode")
    )
    assert stored == {"n": EPISODES, "lo": 1, "hi": EPISODES}
