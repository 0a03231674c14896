"""services/converter/media/process.py: the supervisor on real (tiny) processes: what it keeps of
their output, how it feeds them, and how it ends them with everything they started."""
import fcntl
import os
import time

import eventlet

import pytest
from pymongo.errors import AutoReconnect

from services.converter.exceptions import ConversionAborted, ConversionError, TransientError
from services.converter.media import feed, process
from services.converter.media.process import Supervisor
from services.converter.media.progress import Progress
from tests.helpers import cmdline, gone, wait_until
from tests.media import LocalStored


def test_keeps_the_head_of_stdout_and_the_tail_of_stderr():
    script = "head -c 9000000 /dev/zero; i=0; while [ $i -lt 900 ]; do echo line $i >&2; " \
             "i=$((i+1)); done; exit 3"
    exit = Supervisor(timeout=60).run(["sh", "-c", script])
    assert exit.returncode == 3
    assert len(exit.output) == process.STDOUT_KEEP
    assert len(exit.errors) == process.STDERR_KEEP and exit.errors.endswith("line 899\n")


def test_feeds_stdin_from_storage_and_reads_lines(tmp_path):
    path = tmp_path / "upload"
    path.write_bytes(b"a\nb\n" * (feed.PIPE_BLOCK // 2))  # 4 blocks
    lines = []
    exit = Supervisor(timeout=60).run(["sh", "-c", "wc -c; echo done"], LocalStored(str(path)),
                                      lines.append)
    assert exit.returncode == 0 and exit.output == b""
    assert lines == [str(path.stat().st_size).encode(), b"done"]


def test_a_process_beside_gets_the_same_input_while_it_reads(tmp_path):
    path = tmp_path / "upload"
    path.write_bytes(bytes(range(256)) * (5 * feed.PIPE_BLOCK // 256))  # 5 blocks
    exit = Supervisor(timeout=60).run(["sh", "-c", "md5sum"], LocalStored(str(path)),
                                      beside=["sh", "-c", "md5sum >&2; echo side"])
    assert exit.returncode == 0 and exit.beside.returncode == 0
    assert exit.output.split()[0].decode() == exit.beside.errors.split()[0]  # the same bytes, read once
    assert exit.beside.output == b"side\n"


def test_a_process_beside_that_stops_reading_or_stalls_never_holds_the_main_one(tmp_path):
    path = tmp_path / "upload"
    path.write_bytes(b"\x00" * (3 * feed.SIDE_BACKLOG * feed.PIPE_BLOCK))
    for side, returncode in (("head -c 10 >/dev/null; echo took", 0), ("sleep 300", -9)):
        started = time.monotonic()
        fed = []
        exit = Supervisor(timeout=600).run(["sh", "-c", "wc -c"], LocalStored(str(path)),
                                           on_fed=fed.append, beside=["sh", "-c", side])
        assert int(exit.output) == path.stat().st_size == fed[-1]
        assert exit.beside.returncode == returncode  # the stalled one killed SIDE_GRACE after
        assert exit.beside.cut or returncode == 0 and not exit.cut  # it may not have seen all
        assert time.monotonic() - started < 60


def answered(tmp_path, later=None):
    """An on_beside that answers `later` and then (from another green thread, once the answer is
    taken) lets the main process end by creating tmp_path/go; what it was given in `told`."""
    told = []

    def on_beside(exit):
        told.append(exit)
        eventlet.spawn((tmp_path / "go").touch)
        return later
    return on_beside, told


def wait_for(flag):
    """Shell: wait for the file `flag` to exist."""
    return "; while [ ! -e '%s' ]; do sleep 0.01; done" % flag


def test_a_process_started_on_the_answer_beside_gets_the_input_from_its_start(tmp_path):
    path = tmp_path / "upload"
    path.write_bytes(bytes(range(256)) * (3 * feed.PIPE_BLOCK // 256))  # 3 blocks
    late = []
    on_beside, told = answered(tmp_path, (["sh", "-c", "md5sum"], late.append))
    exit = Supervisor(timeout=60).run(
        ["sh", "-c", "md5sum >&2" + wait_for(tmp_path / "go")], LocalStored(str(path)),
        beside=["sh", "-c", "head -c 10 >/dev/null; echo side"], on_beside=on_beside)
    assert told == [exit.beside] and exit.beside.output == b"side\n"
    assert exit.returncode == 0 and [each.returncode for each in late] == [0]
    assert late[0].output.split()[0].decode() == exit.errors.split()[0]  # every byte, in order


def test_the_processes_beside_the_main_one_take_only_the_cpu_it_leaves(tmp_path):
    """The main process under the usual policy, the one beside it and the one started on its
    answer under SCHED_IDLE: each tells its own once it read its whole input (set by then)."""
    path = tmp_path / "upload"
    path.write_bytes(b"\x00" * (2 * feed.PIPE_BLOCK))
    policy = "cat >/dev/null; cut -d' ' -f41 /proc/$$/stat"  # the shell's own (sched_policy)
    late = []
    on_beside, _ = answered(tmp_path, (["sh", "-c", policy], late.append))
    exit = Supervisor(timeout=60).run(
        ["sh", "-c", policy + wait_for(tmp_path / "go")], LocalStored(str(path)),
        beside=["sh", "-c", policy], on_beside=on_beside)
    assert int(exit.output) == os.SCHED_OTHER
    assert int(exit.beside.output) == os.SCHED_IDLE
    assert [int(each.output) for each in late] == [os.SCHED_IDLE]


def test_a_process_beside_that_cannot_start_leaves_the_main_one_killed(tmp_path):
    path = tmp_path / "upload"
    path.write_bytes(b"\x00" * feed.PIPE_BLOCK)
    marker = "main-%d" % os.getpid()
    with pytest.raises(FileNotFoundError):
        Supervisor(timeout=60).run(["sh", "-c", "sleep 300; : %s" % marker], LocalStored(str(path)),
                                   beside=["no-such-program-here"])
    assert [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
            if marker in " ".join(cmdline(pid)) and not gone(pid)] == []


def test_no_process_is_started_on_the_answer_once_more_was_fed_than_can_be_replayed(tmp_path):
    path = tmp_path / "upload"
    path.write_bytes(b"\x00" * ((feed.SIDE_BACKLOG + 4) * feed.PIPE_BLOCK))
    flag = tmp_path / "fed"

    def on_fed(fed):
        if fed > (feed.SIDE_BACKLOG + 1) * feed.PIPE_BLOCK:
            flag.touch()
    late = []
    on_beside, told = answered(tmp_path, (["touch", str(tmp_path / "late")], late.append))
    exit = Supervisor(timeout=60).run(
        ["sh", "-c", "wc -c >&2" + wait_for(tmp_path / "go")], LocalStored(str(path)),
        on_fed=on_fed, beside=["sh", "-c", "head -c 10 >/dev/null" + wait_for(flag)],
        on_beside=on_beside)
    assert exit.returncode == 0 and len(told) == 1
    assert not late and not (tmp_path / "late").exists()


@pytest.mark.parametrize("raised", [ConversionError("No audio."), process.Overruled("found")])
def test_an_answer_that_raises_ends_the_run_at_once(tmp_path, raised):
    path = tmp_path / "upload"
    path.write_bytes(b"\x00" * (3 * feed.PIPE_BLOCK))
    pids = []

    def on_beside(exit):
        raise raised
    started = time.monotonic()
    with pytest.raises(type(raised)) as info:
        Supervisor(timeout=600).run(["sh", "-c", "echo $$; cat >/dev/null; sleep 300"],
                                    LocalStored(str(path)), lambda line: pids.append(int(line)),
                                    beside=["sh", "-c", "head -c 10 >/dev/null"],
                                    on_beside=on_beside)
    assert info.value is raised and time.monotonic() - started < 30
    wait_until(lambda: gone(pids[0]), 10, message="the main process killed")


def test_storage_is_read_ahead_of_the_pipe_in_order_and_errors_come_in_their_place():
    read = []

    def blocks(fail_at=None):
        for number in range(20):
            if number == fail_at:
                raise AutoReconnect("reset")
            read.append(number)
            yield number
    ahead = feed._ReadAhead(blocks(), 4)
    assert next(ahead) == 0
    # while the consumer holds block 0 (ffmpeg reads the pipe), the next ones are already read
    wait_until(lambda: len(read) >= 1 + 4, timeout=5)
    eventlet.sleep(0.05)
    assert len(read) <= 1 + 4 + 1  # bounded: the queue, and the one waiting to go in
    assert list(ahead) == list(range(1, 20))
    read.clear()
    failing = feed._ReadAhead(blocks(fail_at=3), 4)
    assert [next(failing) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(AutoReconnect):
        next(failing)
    stopped = feed._ReadAhead(blocks(), 2)
    next(stopped)
    stopped.close()  # the feed ended (ffmpeg exited): nothing more is read
    assert stopped.reader.dead


def test_a_fed_process_gets_a_wide_stdin_pipe():
    child = process._Child(["sleep", "30"], True, None, None)
    try:
        assert fcntl.fcntl(child.proc.stdin.fileno(), fcntl.F_GETPIPE_SZ) == feed.PIPE_SIZE
    finally:
        child.close()
        child.drain()


def test_a_storage_failure_kills_the_process_at_once_as_transient(tmp_path):
    path = tmp_path / "upload"
    path.write_bytes(b"\x00" * (3 * feed.PIPE_BLOCK))
    stored = LocalStored(str(path), fail_after=1, error=AutoReconnect("connection reset"))
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        Supervisor(timeout=60).run(["sh", "-c", "cat >/dev/null; sleep 30"], stored)
    assert time.monotonic() - started < 10
    assert "connection reset" in info.value.args[0]


def test_a_storage_failure_outweighs_what_the_processes_it_killed_told(tmp_path):
    """The process beside, killed with the main one when storage failed, is `cut`: what its
    callback makes of it (a probe's empty answer taken for "no audio", say) does not turn a
    transient failure into the upload's fault."""
    path = tmp_path / "upload"
    path.write_bytes(b"\x00" * (3 * feed.PIPE_BLOCK))
    stored = LocalStored(str(path), fail_after=1, error=AutoReconnect("connection reset"))
    told = []

    def on_beside(exit):
        told.append(exit)
        raise ConversionError("No audio.")
    with pytest.raises(TransientError):
        Supervisor(timeout=60).run(["sh", "-c", "sleep 30"], stored,
                                   beside=["sh", "-c", "sleep 30"], on_beside=on_beside)
    assert [exit.cut for exit in told] == [True]


@pytest.mark.parametrize("ending", ["deadline", "stop"])
def test_the_deadline_or_a_stop_kills_the_whole_group(ending):
    pids = []
    supervisor = Supervisor(timeout=1 if ending == "deadline" else 600,
                            should_stop=lambda: ending == "stop" and bool(pids))
    started = time.monotonic()
    with pytest.raises(ConversionError if ending == "deadline" else ConversionAborted) as info:
        supervisor.run(["sh", "-c", "sleep 300 & echo $!; sleep 300"],
                       on_line=lambda line: pids.append(int(line)))
    assert time.monotonic() - started < 30
    if ending == "deadline":
        assert info.value.args[0] == "The conversion took longer than the limit of 1 s."
    wait_until(lambda: gone(pids[0]), 10, message="the grandchild killed with its group")


def test_the_deadline_covers_every_process_of_the_conversion():
    supervisor = Supervisor(timeout=2)
    assert supervisor.run(["sh", "-c", "sleep 1"]).returncode == 0
    with pytest.raises(ConversionError):
        supervisor.run(["sh", "-c", "sleep 1; sleep 300"])


def test_progress_reports_a_rising_fraction_once_each():
    seen = []
    progress = Progress(seen.append)
    first, second = progress.reader(10.0, 0.0, 0.5), progress.reader(10.0, 0.5, 0.5)
    for line in (b"out_time_us=2000000", b"out_time_us=bad", b"out_time_us=1000000",
                 b"progress=end"):
        first(line)
    second(b"out_time_us=5000000")
    progress.report(1.0)
    progress.report(0.9)
    assert seen == [0.1, 0.5, 0.75, 1.0]
    assert progress.out_time == 5.0


def test_a_failing_progress_callback_is_only_logged():
    def broken(fraction):
        raise RuntimeError("database away")
    progress = Progress(broken)
    progress.reader(1.0, 0.0, 1.0)(b"progress=end")
    assert progress.reported == 1.0


def test_a_process_whose_pipes_outlive_it_is_seen_to_end_and_what_it_started_goes():
    """Its end is not waited for as its pipes' end: a process it started holds them open."""
    exit = Supervisor(timeout=60).run(["sh", "-c", "sleep 120 & echo $!; exit 4"])
    assert exit.returncode == 4  # not the deadline's ConversionError
    wait_until(lambda: gone(int(exit.output)), 10, message="the sleep killed with its group")
