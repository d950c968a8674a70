"""The envelope and group-command encodings: bytes in, bytes out, no event loop."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simscale.backplane import (
    ChannelKind,
    Envelope,
    EnvelopeError,
    GroupAck,
    GroupAction,
    GroupCommand,
)

JSON_FRAME = b'{"type":1,"target":"send","arguments":["hi"]}\x1e'
MSGPACK_FRAME = b"\x0c\x96\x01\x80\xc0\xa4send\x91\xa2hi\x90"

payload_maps = st.dictionaries(st.sampled_from(["json", "messagepack", "other"]), st.binary(max_size=300))
ids = st.text(min_size=1, max_size=30)


@given(
    kind=st.sampled_from(list(ChannelKind)),
    target=st.text(max_size=20),
    payloads=payload_maps,
    excluded=st.lists(ids, max_size=5).map(tuple),
    origin=st.text(max_size=40),
)
def test_envelope_round_trip(
    kind: ChannelKind, target: str, payloads: dict[str, bytes], excluded: tuple[str, ...], origin: str
) -> None:
    envelope = Envelope(kind, target, payloads, excluded, origin)
    assert Envelope.decode(envelope.encode(), kind, target) == envelope


def test_encoding_is_the_aspnet_layout_byte_for_byte() -> None:
    envelope = Envelope(ChannelKind.ALL, "", {"json": b"x"})
    # fixarray(2) [ fixarray(0), fixmap(1) { fixstr "json": bin8(1) "x" } ]
    assert envelope.encode() == b"\x92\x90\x81\xa4json\xc4\x01x"
    marked = Envelope(ChannelKind.ALL, "", {"json": b"x"}, ("c1",), "srv")
    assert marked.encode() == b"\x93\x91\xa2c1\x81\xa4json\xc4\x01x\xa3srv"


def test_decodes_what_aspnet_writes() -> None:
    written = msgpack.packb([["c1", "c2"], {"json": JSON_FRAME, "messagepack": MSGPACK_FRAME}])
    envelope = Envelope.decode(written, ChannelKind.GROUP, "room")
    assert envelope.channel_kind is ChannelKind.GROUP
    assert envelope.target == "room"
    assert envelope.excluded_connection_ids == ("c1", "c2")
    assert envelope.payload_for("json") == JSON_FRAME
    assert envelope.payload_for("messagepack") == MSGPACK_FRAME
    assert envelope.origin_server == ""


@pytest.mark.parametrize(
    ("items", "origin"),
    [
        ([[], {"json": b"x"}], ""),
        ([[], {"json": b"x"}, "srv-1"], "srv-1"),
        ([[], {"json": b"x"}, None], ""),
        ([[], {"json": b"x"}, 17], ""),
        # ASP.NET client-result invocation: items 2 and 3 are its invocation id and return channel.
        ([[], {"json": b"x"}, "inv-1", "Hub:internal:return:srv"], ""),
        ([[], {"json": b"x"}, "inv-1", "Hub:internal:return:srv", "srv-2", "future", 3], "srv-2"),
        ([[], {"json": b"x"}, "srv-1"], "srv-1"),
    ],
)
def test_tolerates_extra_trailing_items(items: list[object], origin: str) -> None:
    envelope = Envelope.decode(msgpack.packb(items, use_bin_type=True))
    assert envelope.payloads == {"json": b"x"}
    assert envelope.origin_server == origin


def test_tolerates_nil_ids_nil_payloads_and_str_payloads() -> None:
    written = msgpack.packb([None, {"json": None, "messagepack": "as text"}], use_bin_type=True)
    envelope = Envelope.decode(written)
    assert envelope.excluded_connection_ids == ()
    assert envelope.payloads == {"json": b"", "messagepack": b"as text"}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never used in MessagePack
        b"\x92\x90",  # truncated
        msgpack.packb({"not": "an array"}),
        msgpack.packb([[]]),
        msgpack.packb([[], []]),
        msgpack.packb([[1], {}]),
        msgpack.packb([[], {1: b"x"}]),
        msgpack.packb([[], {"json": 5}]),
        msgpack.packb([[], {}]) + b"\x00",  # trailing garbage after the array
    ],
)
def test_rejects_what_is_not_an_invocation(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        Envelope.decode(data)


def test_envelope_is_immutable_and_owns_its_data() -> None:
    payloads = {"json": b"x"}
    excluded = ["c1"]
    envelope = Envelope(ChannelKind.USER, "ann", payloads, excluded, "s")  # type: ignore[arg-type]
    payloads["json"] = b"changed"
    excluded.append("c2")
    assert envelope.payloads == {"json": b"x"}
    assert envelope.excluded_connection_ids == ("c1",)
    with pytest.raises(TypeError):
        envelope.payloads["json"] = b"y"  # type: ignore[index]


def test_payload_for_names_what_is_there() -> None:
    envelope = Envelope(ChannelKind.ALL, "", {"json": b"x"})
    with pytest.raises(KeyError, match="json"):
        envelope.payload_for("messagepack")


def test_rejects_non_bytes_payloads() -> None:
    with pytest.raises(EnvelopeError):
        Envelope(ChannelKind.ALL, "", {"json": "text"})  # type: ignore[dict-item]


@given(
    command_id=st.integers(-(2**31), 2**31 - 1),
    server=ids,
    action=st.sampled_from(list(GroupAction)),
    group=st.text(max_size=20),
    connection=ids,
)
def test_group_command_round_trip(
    command_id: int, server: str, action: GroupAction, group: str, connection: str
) -> None:
    command = GroupCommand(command_id, server, action, group, connection)
    assert GroupCommand.decode(command.encode()) == command


def test_group_command_layout_and_trailing_items() -> None:
    command = GroupCommand(7, "srv", GroupAction.REMOVE, "room", "conn")
    assert msgpack.unpackb(command.encode()) == [7, "srv", 2, "room", "conn"]
    extended = msgpack.packb([7, "srv", 1, "room", "conn", "future field", 99])
    assert GroupCommand.decode(extended) == GroupCommand(7, "srv", GroupAction.ADD, "room", "conn")


@pytest.mark.parametrize(
    "items",
    [[7, "srv", 3, "room", "conn"], [7, "srv", 0, "room", "conn"], [7, "srv", 1, "room"], ["7", "s", 1, "r", "c"]],
)
def test_group_command_rejects_bad_input(items: list[object]) -> None:
    with pytest.raises(EnvelopeError):
        GroupCommand.decode(msgpack.packb(items))


def test_ack_round_trip_layout_and_trailing_items() -> None:
    assert GroupAck(42).encode() == b"\x91\x2a"
    assert GroupAck.decode(GroupAck(-5).encode()) == GroupAck(-5)
    assert GroupAck.decode(msgpack.packb([42, None, "extra"])) == GroupAck(42)
    # A refusal rides as the second item; ASP.NET Core's ``[id]`` layout is unchanged without one.
    refused = GroupAck(42, "full")
    assert msgpack.unpackb(refused.encode()) == [42, "full"]
    assert GroupAck.decode(refused.encode()) == refused
    assert GroupAck.decode(msgpack.packb([42, "full", "extra"])) == refused
    with pytest.raises(EnvelopeError):
        GroupAck.decode(msgpack.packb([]))
    with pytest.raises(EnvelopeError, match="refusal must be a string"):
        GroupAck.decode(msgpack.packb([42, 5]))
    with pytest.raises(EnvelopeError):
        GroupAck(2**31)


def test_a_publish_sequence_rides_in_the_marker_which_aspnet_never_reads() -> None:
    numbered = Envelope(ChannelKind.ALL, "", {"json": b"x"}, (), "srv", 7)
    items = msgpack.unpackb(numbered.encode(), raw=False)
    # Three items: ASP.NET Core's ReadInvocation reads items 2 and 3 only when there are more than three.
    assert items == [[], {"json": b"x"}, ["srv", 7]]
    assert Envelope.decode(numbered.encode()) == numbered
    # An older simscale marker (a plain name) still reads, without a number.
    assert Envelope.decode(msgpack.packb([[], {"json": b"x"}, "srv"])).sequence is None
    # A number without a name is not sent, and a malformed one is ignored.
    assert msgpack.unpackb(Envelope(ChannelKind.ALL, "", {}, (), "", 3).encode()) == [[], {}]
    for odd in (["srv", "7"], ["srv", 0], ["srv", True], [5, 7]):
        assert Envelope.decode(msgpack.packb([[], {}, odd])).sequence is None


def test_sequence_gaps_count_the_skipped_numbers_per_origin() -> None:
    from simscale.backplane.envelope import SequenceGaps

    gaps = SequenceGaps(max_origins=2)
    assert [gaps.observe("a", n) for n in (5, 6, 7, 11)] == [0, 0, 0, 3]  # the first number sets the start
    assert gaps.observe("b", 1) == 0 and gaps.observe("b", 3) == 1
    assert gaps.observe("a", 1) == 0  # a restarted origin counts anew
    assert gaps.observe("a", 2) == 0
    gaps.observe("c", 1)  # a third origin: the least recently heard one ("b") is forgotten
    assert gaps.observe("b", 10) == 0
    with pytest.raises(ValueError, match="max_origins"):
        SequenceGaps(max_origins=0)
