"""services/gateway/server.py: reads of a connection under its RequestClock, on a socket pair."""
import io
import json
import socket
import time

import pytest

from services.gateway.deadline import Expired, RequestClock
from services.gateway.server import TIMEOUT_RESPONSE, ClockedSocket


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def reader(sock, clock):
    return io.BufferedReader(ClockedSocket(sock, clock))


def test_a_request_that_does_not_arrive_in_time_raises_expired(pair):
    ours, theirs = pair
    clock = RequestClock(5, 0.3, 1000, 1)
    stream = reader(ours, clock)
    theirs.sendall(b"GET / HTTP/1.1\r\n")
    assert stream.readline() == b"GET / HTTP/1.1\r\n"
    started = time.monotonic()
    with pytest.raises(Expired):
        stream.readline()          # the headers never come
    assert 0.2 < time.monotonic() - started < 2
    assert stream.read(10) == b""  # the end of the stream from then on
    assert ours.gettimeout() == 5  # writes keep CLIENT_TIMEOUT


def test_silence_is_a_plain_timeout_and_an_upload_cut_is_the_end_of_its_stream(pair):
    ours, theirs = pair
    clock = RequestClock(0.2, 30, 1000, 0.1)
    stream = reader(ours, clock)
    theirs.sendall(b"x")
    assert stream.read(1) == b"x"
    with pytest.raises(socket.timeout) as raised:
        stream.read(1)              # silent for CLIENT_TIMEOUT: not the request's bound
    assert not isinstance(raised.value, Expired) and not clock.expired
    clock.upload()
    theirs.sendall(b"abc")
    assert stream.read(100) == b"abc"   # what arrived before the cut is the route's
    assert clock.expired


def test_the_canned_408_is_the_error_table_s():
    head, body = TIMEOUT_RESPONSE.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in head
    assert json.loads(body)["error"] == "request_timeout"
