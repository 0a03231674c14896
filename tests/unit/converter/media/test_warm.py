"""media.warm with its processes faked: what is started ahead and when, and what is released when a
start yields to another conversion's refill or target (the real processes:
tests/integration/test_warm.py)."""
import subprocess
from unittest import mock

import pytest

from services.common.options import ConversionOptions
from services.converter.media import args, warm
from services.converter.media.args import Tools


class Proc:
    def __init__(self, argv):
        self.argv, self.pid, self.released, self.returncode = argv, 0, False, None

    def poll(self):
        return None


@pytest.fixture
def pool(tmp_path, monkeypatch):
    pool = warm.Warm(Tools(), None, str(tmp_path))
    pool.started = []

    def spawn(argv, piped, limits, idle):
        pool.started.append(Proc(argv))
        if pool.during_start:
            pool.during_start.pop(0)()
        return pool.started[-1]
    pool.during_start = []  # what another green thread does while a Popen yields
    monkeypatch.setattr(warm, "spawn", spawn)
    monkeypatch.setattr(warm, "_release", lambda proc: proc and setattr(proc, "released", True))
    return pool


def encoding(pool, path):
    return args.encode(pool.tools, args.PIPE, path)


def test_one_of_each_waits_and_a_refill_starts_only_what_was_taken(pool):
    pool.refill()
    assert [proc.argv[0] for proc in pool.started] == ["ffmpeg", "ffprobe"]
    encoder, probe = pool.started
    assert encoder.argv == encoding(pool, pool.path)
    assert probe.argv == args.probe(pool.tools, args.PIPE, args.FORMAT_WHITELIST)
    pool.refill()
    assert len(pool.started) == 2
    assert pool.take(probe.argv, True, False) is None  # not idle: another process
    assert pool.take(probe.argv, True, True) is probe
    pool.refill()
    assert [proc.argv[0] for proc in pool.started[2:]] == ["ffprobe"]


def test_a_refill_while_one_starts_starts_no_second(pool):
    pool.during_start = [pool.refill]  # the encoder's Popen yields to a refill
    pool.refill()
    assert [proc.argv[0] for proc in pool.started] == ["ffmpeg", "ffprobe"]
    pool.close()
    pool.closed, pool.started = False, []
    pool.during_start = [lambda: None, pool.refill]  # the probe's does
    pool.refill()
    assert [proc.argv[0] for proc in pool.started] == ["ffmpeg", "ffprobe"]
    assert not any(proc.released for proc in pool.started)


def test_an_encoder_whose_path_was_handed_out_while_it_started_is_released(pool):
    handed = []

    def conversion():
        handed.append(pool.target())
        handed[0].__enter__()
    pool.during_start = [conversion]
    pool.refill()
    encoder = pool.started[0]
    assert encoder.released and handed[0] is not None
    assert (tuple(encoder.argv), True, False) not in pool.ready
    handed[0].__exit__(None, None, None)


def test_a_target_not_run_releases_its_encoder_and_removes_the_path(pool, tmp_path):
    pool.refill()
    encoder = pool.started[0]
    with pool.target() as path:
        assert path in encoder.argv  # the waiting encoder's
        assert (tmp_path / path.rsplit("/", 1)[1]).exists()
    assert encoder.released and not (tmp_path / path.rsplit("/", 1)[1]).exists()
    with pool.target() as other:  # none waiting: a path of its own
        assert other != path
    assert list(tmp_path.iterdir()) == []


def test_other_options_release_the_waiting_encoder_as_theirs_starts_and_none_waits_after(pool):
    pool.refill()
    encoder, probe = pool.started
    with pool.target() as path:
        assert pool.take(probe.argv, True, True) is probe  # the same probe for every conversion
        other = args.encode(pool.tools, args.PIPE, path, ConversionOptions(bitrate=96))
        assert pool.take(other, True, False) is None and encoder.released  # at once
        assert pool.take(encoding(pool, path), True, False) is None  # no second look
    pool.refill()
    assert [proc.argv[0] for proc in pool.started[2:]] == ["ffprobe"]  # no encoder waits
    with pool.target() as path:  # a default conversion, on a path of its own
        assert pool.take(encoding(pool, path), True, False) is None
    pool.refill()
    assert [proc.argv[0] for proc in pool.started[3:]] == ["ffmpeg"]
    assert pool.started[3].argv == encoding(pool, pool.path)


def test_an_overruled_or_spooled_second_pass_does_not_count(pool):
    pool.refill()
    encoder = pool.started[0]
    with pool.target() as path:
        assert pool.take(encoding(pool, path), True, False) is encoder
        assert pool.take(args.encode(pool.tools, "/tmp/upload-x", path), False, False) is None
    pool.refill()
    assert [proc.argv[0] for proc in pool.started[2:]] == ["ffmpeg"]  # the probe still waits


def test_a_process_that_cannot_start_costs_a_warning_only(pool, monkeypatch, caplog):
    def spawn(argv, piped, limits, idle):
        raise subprocess.SubprocessError("no")
    monkeypatch.setattr(warm, "spawn", spawn)
    pool.refill()
    assert pool.ready == {} and pool.starting == set()
    assert caplog.text.count("could not start") == 2


def test_a_process_that_died_waiting_is_not_handed_out(pool):
    pool.refill()
    probe = pool.started[1]
    probe.poll = mock.Mock(return_value=-9)
    probe.returncode = -9
    assert pool.take(probe.argv, True, True) is None and probe.released


def test_close_releases_everything_and_nothing_starts_after(pool, tmp_path):
    pool.refill()
    pool.close()
    assert all(proc.released for proc in pool.started) and pool.ready == {}
    assert list(tmp_path.iterdir()) == []
    pool.refill()
    assert len(pool.started) == 2
