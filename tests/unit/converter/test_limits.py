"""services/converter/limits.py: real children under the limits (read back from /proc/<pid>/limits,
and what the kernel does when a child goes over)."""
import re
import resource
import signal
import subprocess
import sys

from services.common.utils import die_with_parent
from services.converter.limits import ChildLimits
from services.converter.settings import ConverterSettings
from tests.configs import config_defaults

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


def test_a_child_runs_under_the_limits():
    limits = ChildLimits(address_space=512 * MIB, cpu_seconds=77, file_size=3 * MIB, processes=4096)
    child = subprocess.Popen(["sleep", "30"], preexec_fn=limits.preexec(die_with_parent(signal.SIGKILL)))
    try:
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


def test_writing_past_the_file_size_limit_stops_the_child(tmp_path):
    target = tmp_path / "out.bin"
    limits = ChildLimits(address_space=0, cpu_seconds=0, file_size=1 * MIB, processes=0)
    proc = subprocess.run(["dd", "if=/dev/zero", "of=%s" % target, "bs=64K", "count=64"],
                          preexec_fn=limits.preexec(), capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGXFSZ, proc
    assert target.stat().st_size == 1 * MIB


def test_a_child_over_its_cpu_seconds_is_stopped():
    limits = ChildLimits(address_space=0, cpu_seconds=1, file_size=0, processes=0)
    proc = subprocess.run([sys.executable, "-c", "while True: pass"], preexec_fn=limits.preexec(),
                          capture_output=True, timeout=60)
    assert proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL), proc


def test_a_child_over_its_address_space_cannot_allocate():
    limits = ChildLimits(address_space=256 * MIB, cpu_seconds=0, file_size=0, processes=0)
    proc = subprocess.run([sys.executable, "-c", "bytearray(512 * 1024 * 1024)"],
                          preexec_fn=limits.preexec(), capture_output=True, timeout=60)
    assert proc.returncode == 1 and b"MemoryError" in proc.stderr, proc


def test_the_defaults_fit_a_four_hour_input():
    settings = ConverterSettings.load(config_defaults())
    limits = ChildLimits.from_settings(settings)
    assert settings.MAX_DURATION == FOUR_HOURS
    assert limits.cpu_seconds >= settings.CONVERT_TIMEOUT  # a conversion ends by its timeout first
    assert limits.file_size >= FOUR_HOURS * 320_000 // 8  # the largest MP3 (320 kbit/s)
    assert limits.file_size >= int(config_defaults()["MAX_UPLOAD_BYTES"])  # a spooled copy
    assert limits.address_space >= 1024 * MIB


def test_the_supervisor_runs_its_children_under_the_limits():
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
