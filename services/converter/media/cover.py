"""The cover picture: the first of args.cover's argvs that writes a JPEG on stdout."""
import logging

log = logging.getLogger(__name__)

JPEG = b"\xff\xd8"


def picture(exit):
    """The JPEG a cover argv's run wrote on stdout (its process.Exit, or None), else None."""
    if exit is not None and exit.returncode == 0 and exit.output.startswith(JPEG):
        return exit.output
    return None


def grab(run, argvs):
    """JPEG bytes, or None. `run(argv)` returns a process.Exit."""
    errors = ""
    for argv in argvs:
        exit = run(argv)
        found = picture(exit)
        if found is not None:
            return found
        errors = exit.errors
    if argvs:
        log.info("no cover picture: %s", errors.strip()[-200:])
    return None
