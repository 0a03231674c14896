"""Ctrl-C for the `mp3svc` command: pressed at any moment before the command's work is done, even while
its modules load, it stops the command with a sentence on stderr and exit status 130; pressed once the
work is done (the results printed), or again while the command winds down after the first, it changes
nothing. This module imports nothing heavy: the console script starts here.

Only the command installs the handler (`cli.main` called from Python leaves the caller's alone), and a
SIGINT its parent ignores stays ignored, as Python leaves it (a script's background job, `nohup`)."""
import signal
import sys


def _stop(signum, frame):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the wind-down (messages, closing) runs to its end
    raise KeyboardInterrupt


def install():
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _stop)


def work_done():
    """The command's result stands: a Ctrl-C from now on is ignored (a signal already pending is
    dropped too: Python does not run a handler that is SIG_IGN by the time it checks)."""
    if signal.getsignal(signal.SIGINT) is _stop:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def run():
    """The `mp3svc` console script: cli.main, with Ctrl-C handled from the first import to the exit."""
    install()
    try:
        try:
            from mp3svc_client.cli import main  # a moment of imports: Ctrl-C there says so too
            return main()
        finally:
            work_done()
    except KeyboardInterrupt:
        print("mp3svc: Interrupted.", file=sys.stderr)
        return 130
