"""Worker protocol framing: NAME SP len SP json NL, in both directions."""

from __future__ import annotations

import os
import threading

import pytest

from disco.worker.protocol import (MAX_NAME, Channel, Parser, ProtocolError, decode, encode)


@pytest.mark.parametrize("name, payload", [
    ("WORKER", {"version": "1.1", "pid": 1234}),
    ("TASK", ""),
    ("INPUT", ["exclude", [1, 2, 3]]),
    ("OUTPUT", [0, "1b/map-0/map-0", 42]),
    ("MSG", "\u00c4\u00e4rett\u00f6myys \u2603 \U0001F600"),
    ("MSG", "line one\nline two \"quoted\" \\ back"),
    ("INPUT", ["done", [[0, "ok", "all", [[0, "dir://h/disco/x"]]]]]),
])
def test_round_trip(name: str, payload: object) -> None:
    message = encode(name, payload)
    assert message.endswith(b"\n")
    assert message.isascii()
    assert decode(message) == (name, payload)


def test_no_payload_is_the_empty_json_string() -> None:
    assert encode("DONE") == b'DONE 2 ""\n'


def test_length_counts_payload_bytes() -> None:
    message = encode("MSG", "\u00e9")
    name, length, body = message[:-1].split(b" ", 2)
    assert (name, int(length)) == (b"MSG", len(body))


def test_parser_takes_bytes_one_at_a_time_and_many_at_once() -> None:
    stream = b"".join(encode("MSG", f"message {i}") for i in range(5)) + encode("DONE")
    parser = Parser()
    got = []
    for i in range(len(stream)):
        got.extend(parser.feed(stream[i:i + 1]))
    assert [p for _n, p in got] == [f"message {i}" for i in range(5)] + [""]
    assert not parser.pending()
    assert Parser().feed(stream) == got


@pytest.mark.parametrize("garbage", [
    b"hello world\n",                 # a stray print
    b"MSG 5 \"abc\"X",                # no newline where one belongs
    b"MSG x1 \"a\"\n",                # length not a number
    b"MSG 3 abc\n",                   # payload not JSON
    b"ABCDEFGHIJKL 2 \"\"\n",         # name longer than 10 bytes
    b"\x00\x01binary",
])
def test_parser_rejects_stray_bytes(garbage: bytes) -> None:
    with pytest.raises(ProtocolError):
        Parser().feed(garbage)


def test_encode_rejects_bad_names() -> None:
    for name in ("", "X" * (MAX_NAME + 1), "TWO WORDS"):
        with pytest.raises(ProtocolError):
            encode(name, "")


def test_channel_request_reply_over_pipes() -> None:
    to_node_r, to_node_w = os.pipe()
    to_worker_r, to_worker_w = os.pipe()
    channel = Channel(to_worker_r, to_node_w, timeout=10)
    seen = []

    def node() -> None:
        parser = Parser()
        while len(seen) < 3:
            for message in parser.feed(os.read(to_node_r, 4096)):
                seen.append(message)
                os.write(to_worker_w, encode("OK", "ok") if message[0] != "TASK"
                         else encode("TASK", {"taskid": 3}))

    thread = threading.Thread(target=node)
    thread.start()
    try:
        assert channel.request("WORKER", {"version": "1.1", "pid": 1}) == ("OK", "ok")
        assert channel.request("TASK") == ("TASK", {"taskid": 3})
        channel.msg("hi")
        thread.join(10)
        assert [name for name, _p in seen] == ["WORKER", "TASK", "MSG"]
    finally:
        for fd in (to_node_r, to_node_w, to_worker_r, to_worker_w):
            os.close(fd)


def test_channel_times_out_and_sees_eof() -> None:
    read_end, write_end = os.pipe()
    out_r, out_w = os.pipe()
    channel = Channel(read_end, out_w, timeout=0.2)
    try:
        with pytest.raises(TimeoutError):
            channel.request("PING", "")
        os.close(write_end)
        with pytest.raises(EOFError):
            channel.request("PING", "")
    finally:
        for fd in (read_end, out_r, out_w):
            os.close(fd)


def test_msg_pacing_allows_four_a_second() -> None:
    channel = Channel(-1, -1)
    for _ in range(4):
        assert channel.msg_allowed()
        channel.msg_times.append(__import__("time").monotonic())
    assert not channel.msg_allowed()


def test_progress_leaves_room_for_the_last_message() -> None:
    # Progress lines ask with reserve=1, so the "Done" line after them never waits.
    channel = Channel(-1, -1)
    for _ in range(3):
        assert channel.msg_allowed(reserve=1)
        channel.msg_times.append(__import__("time").monotonic())
    assert not channel.msg_allowed(reserve=1)
    assert channel.msg_allowed()
