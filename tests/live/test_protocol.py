"""The live stream's messages: one definition per kind, in an envelope read without the JSON."""

import json

import pytest

from live.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_TOO_MANY,
    CLOSE_UNAUTHENTICATED,
    AccessChanged,
    Envelope,
    Frame,
    PlayStatus,
    RunStatus,
    snapshot_json,
)


def test_a_message_is_json_with_its_kind_as_type_and_unset_fields_left_out() -> None:
    frame = Frame(seq=3, t=1.5, episode=2, board="..", next="T", lines=1, score=40, pieces=9)
    assert json.loads(frame.to_json()) == {
        "type": "frame",
        "seq": 3,
        "t": 1.5,
        "episode": 2,
        "board": "..",
        "next": "T",
        "lines": 1,
        "score": 40,
        "pieces": 9,
    }
    assert json.loads(Frame(1, 0.0, 1, "", "I", 0, 0, 0, seed=7).to_json())["seed"] == 7
    assert json.loads(PlayStatus("paused", "", 4, True, 2.0).to_json())["type"] == "status"


def test_an_envelope_carries_kind_and_publish_time_outside_the_json() -> None:
    message = RunStatus("running", 'with "quotes"\nand a newline', 12.25)
    envelope = Envelope.of(message, published=99.5)
    back = Envelope.from_bytes(envelope.to_bytes())
    assert (back.kind, back.published) == ("status", 99.5)
    assert json.loads(back.text)["detail"] == 'with "quotes"\nand a newline'
    assert not back.is_board_frame and not back.is_control
    assert Envelope.of(AccessChanged()).is_control


@pytest.mark.parametrize("data", [b"", b"no newline", b"\xff\xfe\n{}", b"frame x\n{}"])
def test_what_is_not_an_envelope_is_refused_with_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        Envelope.from_bytes(data)


def test_a_snapshot_splices_parts_already_encoded() -> None:
    text = snapshot_json({"play": {"id": 1}}, frame='{"type":"frame"}', metrics=None)
    assert json.loads(text) == {
        "type": "snapshot",
        "play": {"id": 1},
        "frame": {"type": "frame"},
        "metrics": None,
    }


def test_the_close_codes_are_the_pages_own() -> None:
    assert (CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN) == (4401, 4403)


def test_the_pages_know_the_same_close_codes() -> None:
    import re
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "static/js/live_socket.js").read_text()
    codes = dict(re.findall(r"LiveSocket\.(CLOSE_\w+) = (\d+);", source))
    assert codes == {
        "CLOSE_UNAUTHENTICATED": str(CLOSE_UNAUTHENTICATED),
        "CLOSE_FORBIDDEN": str(CLOSE_FORBIDDEN),
        "CLOSE_TOO_MANY": str(CLOSE_TOO_MANY),
    }


def test_a_socket_without_the_overlay_gets_the_frame_without_its_options() -> None:
    options = [{"rotation": 1, "column": 3, "value": -2.5, "chosen": True}]
    frame = Frame(4, 1.5, 1, "..", "I", 0, 0, 3, piece="T", options=options)
    envelope = Envelope.of(frame, frame.t)
    plain = envelope.without_options
    assert json.loads(envelope.text)["options"] == options
    assert json.loads(plain.text) == {
        k: v for k, v in json.loads(envelope.text).items() if k != "options"
    }
    assert (plain.kind, plain.published) == (envelope.kind, envelope.published)
    assert envelope.without_options is plain  # worked out once for every socket
    bare = Envelope.of(Frame(5, 2.0, 1, "..", "I", 0, 0, 3))
    assert bare.without_options is bare
