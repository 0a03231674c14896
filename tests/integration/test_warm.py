"""The default conversion's ffmpeg and ffprobe started ahead (media/warm.py), with real processes on
media ffmpeg makes here: a conversion takes them and makes the same MP3 as one that starts its own;
other options leave the waiting encoder unfed and killed; nothing is left behind."""
import os

import pytest

from services.common.options import parse_options
from services.converter.limits import ChildLimits
from services.converter.media import args, process
from services.converter.media.encoder import Encoder
from tests import media as m
from tests.helpers import wait_until

LIMITS = ChildLimits(address_space=0, cpu_seconds=77, file_size=0, processes=0)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return m.make(tmp_path_factory.mktemp("warm"), "plain.mkv", duration=4.0, chapters=[],
                  picture=False, second_track=False)


@pytest.fixture
def started(monkeypatch):
    """The argv of every process a conversion starts itself (not started ahead)."""
    argvs, spawn = [], process.spawn

    def recording(argv, *rest, **kwargs):
        argvs.append(argv)
        return spawn(argv, *rest, **kwargs)
    monkeypatch.setattr(process, "spawn", recording)
    return argvs


@pytest.fixture
def encoder(tmp_path):
    encoder = Encoder(tmp_dir=str(tmp_path), timeout=60, limits=LIMITS, warm=True)
    yield encoder
    encoder.close()


def waiting(encoder):
    """{argv[0] of what is waiting: Popen}, once each has loaded its program."""
    procs = {os.path.basename(argv[0]): proc for (argv, _, _), proc in encoder.warm.ready.items()}
    assert sorted(procs) == ["ffmpeg", "ffprobe"]
    for name, proc in procs.items():
        wait_until(lambda: os.path.basename(os.readlink("/proc/%d/exe" % proc.pid)) == name, 10,
                   0.01, message="%s loaded" % name)
    return procs


def gone(pid):
    return not os.path.exists("/proc/%d" % pid)


def converted(encoder, video, options=None):
    with encoder.target() as target:
        result = encoder.convert(m.LocalStored(video), target, parse_options(options or {}))
        with open(target, "rb") as mp3:
            data = mp3.read()
    assert not os.path.exists(target)
    return result, data


def test_a_default_conversion_takes_the_waiting_processes_and_makes_the_same_mp3(
        video, encoder, tmp_path, started):
    cold_result, cold = converted(Encoder(tmp_dir=str(tmp_path), timeout=60), video)
    started.clear()
    encoder.prepare()
    procs = waiting(encoder)
    with open("/proc/%d/limits" % procs["ffmpeg"].pid) as limits:  # as any child: confined
        assert "Max cpu time              77                   77" in limits.read()
    assert os.sched_getscheduler(procs["ffprobe"].pid) == os.SCHED_IDLE  # beside the encoding

    result, data = converted(encoder, video)
    assert started and all("image2pipe" in argv for argv in started)  # the cover's frame only
    assert procs["ffmpeg"].returncode == 0 and procs["ffprobe"].returncode == 0
    assert (result, data) == (cold_result, cold)
    assert encoder.warm.ready == {} and encoder.warm.path is None  # taken, not started again yet

    encoder.prepare()  # the next conversion's
    again = waiting(encoder)
    assert not set(proc.pid for proc in again.values()) & set(proc.pid for proc in procs.values())
    encoder.close()
    wait_until(lambda: all(gone(proc.pid) for proc in again.values()), 10, 0.01,
               message="the waiting processes killed")
    assert os.listdir(tmp_path) == []  # no MP3, no waiting encoder's path
    encoder.prepare()  # closed: none started
    assert encoder.warm.ready == {}


def test_other_options_run_their_own_encoder_and_the_waiting_one_is_never_fed(
        video, encoder, started):
    encoder.prepare()
    procs = waiting(encoder)
    path = encoder.warm.path
    result, data = converted(encoder, video, {"bitrate": "96", "cover": "none"})
    assert [argv[0] for argv in started] == ["ffmpeg"]  # its own encoder; the probe was waiting
    assert "96k" in started[0] and path in started[0]  # on the path handed out
    assert procs["ffprobe"].returncode == 0
    wait_until(lambda: procs["ffmpeg"].returncode is not None, 10, 0.01,
               message="the waiting encoder killed")
    assert procs["ffmpeg"].returncode == -9  # killed, not ended on an input
    assert abs(result.duration - 4.0) < 0.1 and data[:3] == b"ID3"
    assert not os.path.exists(path)


def test_a_waiting_process_that_died_is_replaced_by_the_conversion(video, encoder, started):
    encoder.prepare()
    procs = waiting(encoder)
    os.kill(procs["ffmpeg"].pid, 9)
    wait_until(lambda: procs["ffmpeg"].poll() is not None, 10, 0.01, message="it died")
    path = encoder.warm.path
    result, data = converted(encoder, video, {"cover": "none"})
    assert started == [args.encode(encoder.tools, args.PIPE, path)]  # the same, started anew
    assert abs(result.duration - 4.0) < 0.1 and data[:3] == b"ID3"


def test_the_provider_starts_them_and_leaves_nothing_when_it_stops():
    from services.converter.dependencies import FFmpegEncoder
    from tests.configs import config_defaults

    class Container:
        config = config_defaults()
    provider = FFmpegEncoder()
    provider.container = Container()
    provider.setup()
    provider.start()
    procs = waiting(provider.encoder)
    tmp_dir = provider.tmp_dir
    assert os.listdir(tmp_dir) == [os.path.basename(provider.encoder.warm.path)]
    provider.stop()
    wait_until(lambda: all(gone(proc.pid) for proc in procs.values()), 10, 0.01,
               message="the waiting processes killed")
    assert not os.path.exists(tmp_dir)


def test_a_process_that_cannot_be_started_is_left_to_the_conversion(tmp_path, video, started):
    encoder = Encoder(ffprobe_bin=str(tmp_path / "missing"), tmp_dir=str(tmp_path), warm=True)
    encoder.prepare()  # the encoding waits; the probe could not start
    assert [argv[0] for argv, _, _ in encoder.warm.ready] == ["ffmpeg"]
    encoder.close()
