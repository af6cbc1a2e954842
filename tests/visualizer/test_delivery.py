"""What a viewer is sent of its group's stream while its snapshot is read, and after."""

from live.protocol import Envelope
from visualizer.delivery import Pace, ReaderPace, ViewerStream


def board(published: float) -> Envelope:
    return Envelope("frame", published, f"board@{published}")


def metrics(n: int) -> Envelope:
    return Envelope("metrics", 0.0, f"metrics {n}")


def drain(stream: ViewerStream) -> list[str]:
    sent = []
    while (message := stream.next_held()) is not None:
        sent.append(message.text)
    return sent


def test_messages_before_the_snapshot_are_held_and_come_after_it_in_order() -> None:
    stream = ViewerStream()
    assert not stream.offer(metrics(1))
    assert not stream.offer(metrics(2))
    stream.snapshot_shows(None)
    assert drain(stream) == ["metrics 1", "metrics 2"]
    assert stream.offer(metrics(3)), "released: sent as it comes"


def test_only_the_newest_board_is_held() -> None:
    stream = ViewerStream()
    for message in (board(1.0), metrics(1), board(2.0), board(3.0)):
        stream.offer(message)
    assert drain(stream) == ["metrics 1", "board@3.0"]


def test_no_board_older_than_the_snapshots_is_sent_however_late_it_comes() -> None:
    stream = ViewerStream()
    stream.offer(board(5.0))
    stream.snapshot_shows(board(6.0))
    assert drain(stream) == []
    assert not stream.offer(board(6.0)), "the snapshot's own board, relayed late"
    assert not stream.offer(board(4.0))
    assert stream.offer(metrics(1)), "other kinds are never superseded"
    assert stream.offer(board(7.0))
    assert stream.offer(board(1.0)), "after a newer board, times are the publisher's business"


def test_a_resumed_run_numbering_boards_from_one_again_is_ordered_by_time() -> None:
    stream = ViewerStream()
    stream.snapshot_shows(Envelope("frame", 10.0, '{"seq":5000}'))
    drain(stream)
    assert stream.offer(Envelope("frame", 11.0, '{"seq":1}'))


def test_what_is_held_is_bounded() -> None:
    stream = ViewerStream(max_held=3)
    for n in range(10):
        stream.offer(metrics(n))
    assert drain(stream) == ["metrics 0", "metrics 1", "metrics 2"]


def test_a_reader_with_anything_unsent_is_skipped_boards_but_not_other_messages() -> None:
    pace = ReaderPace(max_backlog=1000, max_seconds=3.0)
    assert pace.pace(board(1.0), 0, now=0.0) is Pace.SEND
    assert pace.pace(board(2.0), 10, now=0.1) is Pace.SKIP
    assert pace.pace(metrics(1), 10, now=0.2) is Pace.SEND
    assert pace.pace(board(3.0), None, now=0.3) is Pace.SEND, "not known: sent"


def test_a_reader_far_behind_for_long_is_closed_and_one_that_catches_up_is_not() -> None:
    pace = ReaderPace(max_backlog=1000, max_seconds=3.0)
    assert pace.pace(metrics(1), 5000, now=10.0) is Pace.SEND
    assert pace.pace(metrics(2), 5000, now=12.9) is Pace.SEND
    assert pace.pace(metrics(3), 500, now=13.0) is Pace.SEND, "caught up a little: again"
    assert pace.pace(metrics(4), 5000, now=14.0) is Pace.SEND
    assert pace.pace(board(5.0), 5000, now=16.9) is Pace.SKIP
    assert pace.pace(metrics(5), 5000, now=17.0) is Pace.CLOSE
