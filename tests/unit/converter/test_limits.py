"""services/converter/limits.py: real children under the limits (read back from /proc/<pid>/limits,
and what the kernel does when a child goes over), and killed with their parent."""
import os
import re
import resource
import signal
import subprocess
import sys
import textwrap

import pytest

from services.converter import limits as limits_module
from services.converter.limits import ChildLimits, confined
from services.converter.settings import ConverterSettings
from tests.configs import ROOT, config_defaults
from tests.helpers import cmdline, gone, wait_until

MIB = 1024 * 1024
FOUR_HOURS = 4 * 3600


def proc_limits(pid):
    """{name: (soft, hard)} from /proc/<pid>/limits."""
    limits = {}
    with open("/proc/%d/limits" % pid) as handle:
        next(handle)
        for line in handle:
            name, soft, hard = line[:26].strip(), line[26:47].strip(), line[47:68].strip()
            limits[name] = (soft, hard)
    return limits


@pytest.fixture(params=["util-linux", "preexec_fn"])
def way(request, monkeypatch):
    """Each way `confined` sets the limits: through setpriv and prlimit, and without them."""
    if request.param == "preexec_fn":
        monkeypatch.setattr(limits_module, "SETPRIV", None)
    else:
        assert limits_module.SETPRIV and limits_module.PRLIMIT, "util-linux is essential on Debian"
    return request.param


def parent_script(way, body):
    """Python for a parent process of its own that has `confined` set limits `way` (as the fixture
    does here), then runs `body` (with `module`, resource, subprocess, sys and time imported)."""
    return textwrap.dedent('''
        import resource, subprocess, sys, time
        sys.path.insert(0, %r)
        from services.converter import limits as module
        if %r == "preexec_fn":
            module.SETPRIV = None
    ''') % (ROOT, way) + textwrap.dedent(body)


def run(argv, limits, **kwargs):
    argv, preexec_fn = confined(argv, limits)
    return subprocess.run(argv, preexec_fn=preexec_fn, capture_output=True, timeout=60, **kwargs)


def test_a_child_runs_under_the_limits(way):
    limits = ChildLimits(address_space=512 * MIB, cpu_seconds=77, file_size=3 * MIB, processes=4096)
    argv, preexec_fn = confined(["sleep", "30"], limits)
    assert (preexec_fn is None) == (way == "util-linux")  # so subprocess may vfork
    child = subprocess.Popen(argv, preexec_fn=preexec_fn)
    try:
        wait_until(lambda: cmdline(child.pid)[:1] == ["sleep"], 10, message="sleep running")
        seen = proc_limits(child.pid)
    finally:
        child.kill()
        child.wait()
    assert seen["Max address space"] == (str(512 * MIB),) * 2
    assert seen["Max cpu time"] == ("77",) * 2
    assert seen["Max file size"] == (str(3 * MIB),) * 2
    assert seen["Max processes"] == ("4096",) * 2
    # the parent keeps its own
    assert resource.getrlimit(resource.RLIMIT_CPU) != (77, 77)


def test_zero_leaves_a_limit_off():
    limits = ChildLimits(address_space=0, cpu_seconds=5, file_size=0, processes=0)
    assert [which for which, _ in limits.rlimits()] == [resource.RLIMIT_CPU]


def test_writing_past_the_file_size_limit_stops_the_child(tmp_path, way):
    target = tmp_path / "out.bin"
    limits = ChildLimits(address_space=0, cpu_seconds=0, file_size=1 * MIB, processes=0)
    proc = run(["dd", "if=/dev/zero", "of=%s" % target, "bs=64K", "count=64"], limits)
    assert proc.returncode == -signal.SIGXFSZ, proc
    assert target.stat().st_size == 1 * MIB


def test_a_child_over_its_cpu_seconds_is_stopped(way):
    limits = ChildLimits(address_space=0, cpu_seconds=1, file_size=0, processes=0)
    proc = run([sys.executable, "-c", "while True: pass"], limits)
    assert proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL), proc


def test_a_child_over_its_address_space_cannot_allocate(way):
    limits = ChildLimits(address_space=256 * MIB, cpu_seconds=0, file_size=0, processes=0)
    proc = run([sys.executable, "-c", "bytearray(512 * 1024 * 1024)"], limits)
    assert proc.returncode == 1 and b"MemoryError" in proc.stderr, proc


def test_a_limit_above_the_parents_hard_limit_is_kept_at_it(way):
    """A converter under a lower hard limit than the settings' passes its own on (a process can
    only lower a hard limit): prlimit's options, or apply in the preexec_fn, are worked out in it."""
    ceiling = 64 * MIB
    script = parent_script(way, '''
        resource.setrlimit(resource.RLIMIT_FSIZE, (%d, %d))
        argv, preexec_fn = module.confined(["cat", "/proc/self/limits"],
                                           module.ChildLimits(0, 0, %d, 0))
        sys.stdout.write(subprocess.run(argv, preexec_fn=preexec_fn, check=True,
                                        capture_output=True, text=True).stdout)
    ''' % (ceiling, ceiling, 2 * ceiling))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"Max file size\s+%d\s+%d\s" % (ceiling, ceiling), proc.stdout), proc.stdout


def test_a_child_is_killed_with_its_parent(way):
    """A converter killed (SIGKILL: no cleanup of its own) leaves no ffmpeg running."""
    script = parent_script(way, '''
        argv, preexec_fn = module.confined(["sleep", "300"], module.ChildLimits(0, 60, 0, 0))
        child = subprocess.Popen(argv, preexec_fn=preexec_fn, start_new_session=True)
        print(child.pid, flush=True)
        time.sleep(300)
    ''')
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        # running sleep itself: whatever set the parent-death signal is done
        wait_until(lambda: cmdline(pid)[:1] == ["sleep"], 10, message="sleep running")
        assert not gone(pid)
        parent.kill()
        parent.wait()
        wait_until(lambda: gone(pid), 10, message="the child killed with its parent")
    finally:
        parent.kill()
        parent.wait()
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_program_not_found_raises_as_popen_does(way):
    with pytest.raises(FileNotFoundError):
        argv, preexec_fn = confined(["no-such-program-here"], ChildLimits(0, 5, 0, 0))
        subprocess.Popen(argv, preexec_fn=preexec_fn)


def test_the_defaults_fit_a_four_hour_input():
    settings = ConverterSettings.load(config_defaults())
    limits = ChildLimits.from_settings(settings)
    assert settings.MAX_DURATION == FOUR_HOURS
    assert limits.cpu_seconds >= settings.CONVERT_TIMEOUT  # a conversion ends by its timeout first
    assert limits.file_size >= FOUR_HOURS * 320_000 // 8  # the largest MP3 (320 kbit/s)
    assert limits.file_size >= int(config_defaults()["MAX_UPLOAD_BYTES"])  # a spooled copy
    assert limits.address_space >= 1024 * MIB


def test_the_supervisor_runs_its_children_under_the_limits(way):
    from services.converter.media.process import Supervisor
    limits = ChildLimits(address_space=768 * MIB, cpu_seconds=55, file_size=5 * MIB, processes=0)
    exit = Supervisor(timeout=60, limits=limits).run(["cat", "/proc/self/limits"])
    assert exit.returncode == 0
    text = exit.output.decode()
    assert re.search(r"Max cpu time\s+55\s+55\s", text), text
    assert re.search(r"Max file size\s+%d\s+%d\s" % (5 * MIB, 5 * MIB), text), text
    assert re.search(r"Max address space\s+%d\s+%d\s" % (768 * MIB, 768 * MIB), text), text


def test_the_encoder_provider_passes_the_settings_limits():
    from services.converter.dependencies import FFmpegEncoder

    class Container:
        config = dict(config_defaults(), FFMPEG_MAX_CPU_SECONDS=1234)
    provider = FFmpegEncoder()
    provider.container = Container()
    provider.setup()
    try:
        assert provider.encoder.limits == ChildLimits(2147483648, 1234, 2147483648, 0)
    finally:
        provider.stop()
