"""services/gateway/deadline.py: how long each read of a connection may wait."""
import socket

import pytest

from services.gateway.deadline import REQUEST, UPLOAD, Expired, RequestClock


class FakeTime:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def clock(client=60, request=30, rate=10240, grace=60):
    now = FakeTime()
    return RequestClock(client, request, rate, grace, clock=now), now


def test_idle_waits_client_timeout_and_the_first_byte_starts_the_request():
    bounds, now = clock()
    now.now += 500                       # a keep-alive connection idle for long: no request yet
    assert bounds.timeout() == 60
    bounds.arrived(0)                    # nothing read: still idle
    assert bounds.timeout() == 60
    bounds.arrived(1)                    # the first byte of the request line
    assert bounds.timeout() == 30
    now.now += 25
    assert bounds.timeout() == pytest.approx(5)


def test_a_trickled_request_expires_at_request_timeout_whatever_arrives():
    bounds, now = clock(client=3, request=10)
    bounds.arrived(1)
    for _ in range(9):                   # a byte a second: never silent for CLIENT_TIMEOUT
        assert bounds.timeout() <= 3
        now.now += 1
        bounds.arrived(1)
    assert bounds.timeout() == pytest.approx(1)
    now.now += 1
    with pytest.raises(Expired) as raised:
        bounds.timeout()
    assert isinstance(raised.value, socket.timeout)
    assert (raised.value.kind, bounds.expired_kind, bounds.expired) == (REQUEST, REQUEST, True)
    assert bounds.timeout() is None      # from then on: the end of the stream
    bounds.idle()                        # the connection does not start a new request
    assert bounds.expired


def test_expire_after_a_read_waited_out_the_bound():
    bounds, now = clock()
    bounds.arrived(10)
    with pytest.raises(Expired):
        bounds.expire()
    assert bounds.expired_kind == REQUEST


def test_next_request_on_the_connection_gets_its_own_deadline():
    bounds, now = clock(request=30)
    bounds.arrived(100)
    now.now += 20
    bounds.idle()
    now.now += 40
    assert bounds.timeout() == 60
    bounds.arrived(5)
    assert bounds.timeout() == 30


def test_upload_grace_then_minimum_average_rate():
    bounds, now = clock(client=60, rate=1000, grace=60)
    bounds.arrived(500)                  # the headers
    bounds.upload()
    assert bounds.timeout() == 60        # grace: 60 s whatever arrives
    now.now += 50
    bounds.arrived(20000)                # 20 s worth at 1000 B/s: the grace is longer
    assert bounds.timeout() == pytest.approx(10)
    bounds.arrived(80000)                # 100 s worth: credit past the grace
    assert bounds.timeout() == pytest.approx(50)
    now.now += 50                        # 100 s in, 100 000 bytes: exactly the minimum
    assert bounds.timeout() is None      # the end of the stream: what arrived is the route's
    assert bounds.expired and bounds.expired_kind == UPLOAD


def test_upload_above_the_rate_is_never_cut_and_client_timeout_still_bounds_each_read():
    bounds, now = clock(client=5, rate=1000, grace=10)
    bounds.upload()
    for _ in range(1000):                # 1 hour at twice the minimum
        now.now += 3.6
        bounds.arrived(7200)
        assert 0 < bounds.timeout() <= 5
    assert not bounds.expired


def test_upload_rate_zero_means_no_minimum():
    bounds, now = clock(client=5, rate=0, grace=0)
    bounds.upload()
    now.now += 10 ** 6
    assert bounds.timeout() == 5


def test_upload_after_expiry_stays_expired():
    bounds, now = clock(request=1)
    bounds.arrived(1)
    now.now += 2
    with pytest.raises(Expired):
        bounds.timeout()
    bounds.upload()
    assert bounds.expired and bounds.timeout() is None


def test_an_upload_waited_out_ends_the_stream_and_a_request_raises():
    upload, now = clock(rate=1000, grace=1)
    upload.upload()
    assert upload.expire() is None and upload.expired_kind == UPLOAD
    request, now = clock()
    request.arrived(1)
    with pytest.raises(Expired):
        request.expire()
