"""An envelope is freed as soon as the last socket is done with it: a web process hands
megabytes a second through envelopes, and one kept alive by a reference cycle waits for
the cyclic garbage collector (daphne's memory grew by most of the stream, seen in
tests/visualizer/test_socket_limits.py)."""

import gc
import weakref

from live.protocol import Envelope


def test_an_envelope_without_options_is_freed_by_its_last_reference() -> None:
    metrics = Envelope("metrics", 1.0, '{"type":"metrics","points":[]}')
    frame = Envelope("frame", 1.0, '{"type":"frame","seq":1}')
    overlaid = Envelope("frame", 1.0, '{"type":"frame","seq":1,"options":[]}')
    for envelope in (metrics, frame, overlaid):
        assert envelope.without_options.text.find('"options"') == -1
    refs = [weakref.ref(envelope) for envelope in (metrics, frame, overlaid)]
    gc.disable()
    try:
        del metrics, frame, overlaid, envelope
        assert [ref() for ref in refs] == [None, None, None]
    finally:
        gc.enable()


def test_the_plain_copy_is_worked_out_once() -> None:
    overlaid = Envelope("frame", 1.0, '{"type":"frame","seq":1,"options":[]}')
    assert overlaid.without_options is overlaid.without_options
    assert overlaid.without_options.without_options is overlaid.without_options
