"""Exports and downloads stream from a real daphne in bounded memory.

Under ASGI, Django reads a synchronous streaming response to its end before it sends the
first byte, so an export built by a plain iterator sits whole in the one web process.
These tests download large exports from a daphne of their own (its memory is theirs alone)
while they sample its resident set size.
"""

import csv
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import psutil
import pytest
from django.db import connection
from django.test import Client

from tetris_site import stack
from trainer import services
from trainer.models import Checkpoint, Metric, Run, StoredFile, StoredFileChunk
from trainer.storage import CHUNK_BYTES

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

ROWS = 200_000
# Held whole, the CSV of ROWS rows grew daphne by 64 to 68 MB (its JSON by 80 MB); a page
# at a time, by about 5 MB.
GROWTH_BOUND = 12 * 2**20
# A stored checkpoint is read faster than daphne writes it out. Paced to its client
# (tetris_site/http_flow.py), these 48 MB grew daphne by 5.2 to 5.4 MB, as 32 MB do for a
# client reading 3 MB/s (tests/tetris_site/test_http_flow.py); unpaced, by 5 to 25 MB
# (what the client had not read yet); held whole, by 100 MB.
CHECKPOINT_CHUNKS = 48
CHECKPOINT_GROWTH_BOUND = 12 * 2**20


@pytest.fixture(scope="module")
def daphne(stack_env: dict[str, str], stack_dir: object) -> Iterator[stack.Service]:
    """A daphne for this module alone, checkpoints in the database: no other test's
    requests have grown its memory, and a stored file is read chunk by chunk."""
    env = {**stack_env, "CHECKPOINT_STORAGE": "database"}
    service = stack.start_daphne(
        env, port=stack.free_port(), log_path=stack_dir / "daphne-exports.log"
    )
    yield service
    service.stop(grace=5)


@dataclass
class Download:
    """One download: its body, when its first bytes came, when it ended, and the server's
    resident set size before and at its highest during it."""

    body: bytes
    first_byte_s: float
    total_s: float
    rss_before: int
    rss_peak: int

    @property
    def growth(self) -> int:
        """How far the server's memory rose above where it was."""
        return self.rss_peak - self.rss_before


def download(server: stack.Service, session: str, path: str, **post: object) -> Download:
    """GET `path` (POST `post` with a CSRF token, if given) while sampling the server's RSS.

    A plain HTTP/1.0 socket that takes the bytes as fast as they come: daphne has no flow
    control, so a slow reader would grow its memory by what it has not taken yet.
    """
    process = psutil.Process(server.process.pid)
    peak = before = process.memory_info().rss
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    headers = {"Host": "127.0.0.1", "Cookie": f"sessionid={session}"}
    body = urlencode(post, doseq=True).encode()
    if post:
        token = "t" * 32
        headers["Cookie"] += f"; csrftoken={token}"
        headers.update({"X-CSRFToken": token, "Content-Length": str(len(body))})
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    head = [f"{'POST' if post else 'GET'} {path} HTTP/1.0"]
    request = "\r\n".join([*head, *(f"{k}: {v}" for k, v in headers.items()), "", ""])
    sampler = threading.Thread(target=sample)
    sampler.start()
    buffer = memoryview(bytearray(1 << 20))
    try:
        start = time.perf_counter()
        url = urlsplit(server.url)
        with socket.create_connection((url.hostname, url.port), 30) as client:
            client.sendall(request.encode() + body)
            received = [bytes(buffer[: client.recv_into(buffer)])]
            first_byte = time.perf_counter() - start
            while size := client.recv_into(buffer):
                received.append(bytes(buffer[:size]))
        total = time.perf_counter() - start
    finally:
        sampling = False
        sampler.join()
    head, _, content = b"".join(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head
    return Download(content, first_byte, total, before, peak)


def signed_in(user: object) -> str:
    """A session cookie of `user`, from the database the server reads."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def store_rows(run: Run, rows: int) -> None:
    """`rows` episodes of the run, made by the database itself (a second, not ten)."""
    extra = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
            f"INSERT INTO {Metric._meta.db_table} (run_id, episode, lines, score, pieces, "
            "reward, loss, epsilon, placements_per_second, total_pieces, wall_time, extra) "
            "SELECT %s, i, i %% 97, i * 3, i %% 300, i * 0.25, 1.0 / i, 0.05, 1234.5, i * 40, "
            f"i * 0.01, {extra} FROM n",
            [rows, run.pk, json.dumps({"charts/lr": 0.001})],
        )


def warm_up(server: stack.Service, session: str, path: str, **post: object) -> None:
    """Answer the request once, small, so imports and caches are not counted as growth."""
    download(server, session, path, **post)


def test_a_large_comparison_csv_streams_in_bounded_memory(
    daphne: stack.Service, user: object
) -> None:
    session = signed_in(user)
    small = services.run_create(owner=user, name="small")
    store_rows(small, 10)
    warm_up(daphne, session, f"/api/compare/export.csv?runs={small.pk}")
    run = services.run_create(owner=user, name="=large")
    store_rows(run, ROWS)

    got = download(daphne, session, f"/api/compare/export.csv?runs={run.pk}")

    rows = list(csv.reader(io.StringIO(got.body.decode())))
    assert len(rows) == ROWS + 1
    assert rows[1][:3] == [str(run.pk), "'=large", "1"] and rows[-1][2] == str(ROWS)
    assert got.growth < GROWTH_BOUND, f"daphne grew {got.growth / 2**20:.1f} MB"
    # The first rows leave before the last are read.
    assert got.first_byte_s < got.total_s / 4, got


def test_a_large_comparison_json_streams_in_bounded_memory(
    daphne: stack.Service, user: object
) -> None:
    session = signed_in(user)
    small = services.run_create(owner=user, name="small")
    store_rows(small, 10)
    warm_up(daphne, session, f"/api/compare/export.json?runs={small.pk}")
    run = services.run_create(owner=user, name="large")
    store_rows(run, ROWS // 2)

    got = download(daphne, session, f"/api/compare/export.json?runs={small.pk},{run.pk}")

    body = json.loads(got.body)
    assert [len(entry["metrics"]) for entry in body["runs"]] == [10, ROWS // 2]
    assert body["runs"][1]["metrics"][-1]["episode"] == ROWS // 2
    assert got.growth < GROWTH_BOUND, f"daphne grew {got.growth / 2**20:.1f} MB"


def test_the_admins_json_export_streams_in_bounded_memory(
    daphne: stack.Service, django_user_model: type
) -> None:
    root = django_user_model.objects.create_superuser("root", password="pw-for-tests-3")
    session = signed_in(root)
    small = services.run_create(owner=root, name="small")
    store_rows(small, 10)
    action = {"action": "export_runs", "_selected_action": [small.pk]}
    warm_up(daphne, session, "/admin/trainer/run/", **action)
    run = services.run_create(owner=root, name="large")
    store_rows(run, ROWS // 2)

    action = {"action": "export_runs", "_selected_action": [small.pk, run.pk]}
    got = download(daphne, session, "/admin/trainer/run/", **action)

    body = json.loads(got.body)
    assert {entry["run"]["name"]: len(entry["metrics"]) for entry in body} == {
        "small": 10,
        "large": ROWS // 2,
    }
    assert got.growth < GROWTH_BOUND, f"daphne grew {got.growth / 2**20:.1f} MB"


def store_checkpoint(run: Run, pieces: list[bytes]) -> Checkpoint:
    """A checkpoint of the run kept in the database, a chunk row per piece."""
    stored = StoredFile.objects.create(
        name=f"runs/{run.pk}/{len(pieces)}.pt", size=sum(map(len, pieces))
    )
    StoredFileChunk.objects.bulk_create(
        StoredFileChunk(file=stored, index=index, data=piece) for index, piece in enumerate(pieces)
    )
    return Checkpoint.objects.create(
        run=run, file=stored.name, episode=len(pieces), total_pieces=1, wall_time=1.0
    )


def test_a_checkpoint_kept_in_the_database_downloads_in_bounded_memory(
    daphne: stack.Service, user: object
) -> None:
    session = signed_in(user)
    run = services.run_create(owner=user, name="with a large checkpoint")
    small = store_checkpoint(run, [b"small"])
    warm_up(daphne, session, f"/runs/{run.pk}/checkpoints/{small.pk}/download")
    pieces = [bytes([index]) * CHUNK_BYTES for index in range(CHECKPOINT_CHUNKS)]
    large = store_checkpoint(run, pieces)

    got = download(daphne, session, f"/runs/{run.pk}/checkpoints/{large.pk}/download")

    assert got.body == b"".join(pieces)
    assert got.growth < CHECKPOINT_GROWTH_BOUND, f"daphne grew {got.growth / 2**20:.1f} MB"


# Last in the module: held whole (as it was), this export leaves daphne's heap grown,
# which would hide another export's growth in the tests after it.
def test_a_large_run_csv_streams_in_bounded_memory(daphne: stack.Service, user: object) -> None:
    session = signed_in(user)
    small = services.run_create(owner=user, name="small")
    store_rows(small, 10)
    warm_up(daphne, session, f"/api/runs/{small.pk}/export.csv")
    run = services.run_create(owner=user, name="large")
    store_rows(run, ROWS)

    got = download(daphne, session, f"/api/runs/{run.pk}/export.csv")

    assert got.body.count(b"\n") == ROWS + 1
    assert got.growth < GROWTH_BOUND, f"daphne grew {got.growth / 2**20:.1f} MB"
