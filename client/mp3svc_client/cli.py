"""mp3svc: convert videos to MP3 with an mp3svc server from the command line.

Exit status: 0 when everything asked for succeeded; 1 when anything failed (each reason on stderr);
2 for a usage mistake; 130 when interrupted (Ctrl-C; `convert` resumes an interrupted upload; see
signals.py for Ctrl-C outside a command and after its work).
"""
import argparse
import collections
import getpass
import json
import os
import sys
import time

from tqdm import tqdm

from mp3svc_client import __version__, config, signals
from mp3svc_client.api import TRANSIENT, Api, ApiError, CliError, ConnectionFailed
from mp3svc_client.files import disposition_filename, safe_name, save_stream
from mp3svc_client.upload import Interrupted, UploadStore, upload

FINISHED = ("done", "failed")
POLL_DELAYS = (0.5, 0.5, 1, 1, 2)   # then every 2 s
TRANSIENT_GRACE = 60                # seconds of a gateway restart that waiting rides out
# stop the whole `convert` on these: every other file would fail the same way
FATAL_CODES = ("invalid_option", "invalid_token", "unauthorized", "connection_failed")

# option flag -> (tus metadata key, how the value is written); the server validates the values
OPTIONS = {
    "bitrate": ("bitrate", str), "quality": ("quality", str), "sample_rate": ("sample_rate", str),
    "channels": ("channels", str), "start": ("start", str), "end": ("end", str),
    "audio_track": ("audio_track", str), "normalize": ("normalize", lambda on: "true"),
    "no_tags": ("tags", lambda on: "false"), "title": ("title", str), "artist": ("artist", str),
    "album": ("album", str), "cover": ("cover", str),
}

EXAMPLES = """examples:
  mp3svc register me@example.com          # asks for a password (or reads MP3SVC_PASSWORD)
  mp3svc verify 'http://127.0.0.1:8080/verify?token=...'   # the link from the email (or its token)
  mp3svc login me@example.com
  mp3svc convert talk.mp4 concert.mkv --bitrate 192 -o ~/Music
  mp3svc jobs --json
  mp3svc download 3f2a... -o ~/Music
  mp3svc download --all -o ~/Music         # the MP3 of every finished job
  mp3svc download --all --zip lectures.zip # ... or all of them as one ZIP archive
  mp3svc token create --name backup --scope jobs:read   # prints the token once
  MP3SVC_TOKEN=mp3_... mp3svc jobs                       # a script with that token
environment: MP3SVC_SERVER (default %s), MP3SVC_TOKEN, MP3SVC_PASSWORD
""" % config.DEFAULT_SERVER


class Parser(argparse.ArgumentParser):
    """Also refuses what argparse cannot express: `download` wants ids or --all (one of them)."""

    def parse_known_args(self, args=None, namespace=None):
        args, rest = super().parse_known_args(args, namespace)
        if getattr(args, "command", None) == "download" and bool(args.ids) == args.all:
            self.error("download: give job ids (or MP3 ids), or --all")
        return args, rest


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print machine-readable JSON on stdout")
    parser = Parser(
        prog="mp3svc", parents=[common], epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert videos to MP3 with an mp3svc server.")
    parser.add_argument("--version", action="version", version="mp3svc " + __version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, text in (("register", "create an account (then confirm the address from the email)"),
                       ("login", "log in and save the token"),
                       ("forgot", "email yourself a link to choose a new password"),
                       ("resend", "email a new link to confirm the address")):
        p = sub.add_parser(name, parents=[common], help=text, description=text.capitalize() + ".")
        p.add_argument("email")
    for name, text in (("verify", "confirm your address with the emailed link or its token"),
                       ("reset", "choose a new password with the emailed link or its token")):
        p = sub.add_parser(name, parents=[common], help=text, description=text.capitalize() + ".")
        p.add_argument("token", metavar="TOKEN")
    sub.add_parser("logout", parents=[common], help="end the saved token on the server and forget it",
                   description="End the saved token on the server at once and forget it.")

    p = sub.add_parser("convert", parents=[common], help="upload videos, convert them, save the MP3s",
                       description="Upload (resumably), convert and download. Ctrl-C during an upload and "
                       "running the same command again continues where it stopped.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-o", "--output-dir", metavar="DIR", help="where the MP3s go (default: beside each file)")
    opts = p.add_argument_group("conversion options (default: the server's)")
    rate = opts.add_mutually_exclusive_group()
    rate.add_argument("--bitrate", type=int, metavar="KBPS", help="constant bitrate, e.g. 128, 192, 320")
    rate.add_argument("--quality", type=int, metavar="0-9", help="LAME VBR quality (0 best)")
    opts.add_argument("--sample-rate", type=int, metavar="HZ", help="e.g. 44100 or 48000")
    opts.add_argument("--channels", type=int, metavar="N", help="1 (mono) or 2 (stereo)")
    opts.add_argument("--start", metavar="TIME", help="trim: seconds (12.5) or [HH:]MM:SS[.mmm]")
    opts.add_argument("--end", metavar="TIME", help="trim: seconds or [HH:]MM:SS[.mmm]")
    opts.add_argument("--audio-track", type=int, metavar="N", help="which audio stream (0 first)")
    opts.add_argument("--normalize", action="store_true", default=None, help="EBU R128 loudness to -16 LUFS")
    opts.add_argument("--no-tags", action="store_true", default=None, help="no ID3 tags from the upload")
    opts.add_argument("--title", help="ID3 title")
    opts.add_argument("--artist", help="ID3 artist")
    opts.add_argument("--album", help="ID3 album")
    opts.add_argument("--cover", metavar="auto|none|SECONDS", help="ID3 cover picture")

    p = sub.add_parser("jobs", parents=[common], help="list your jobs", description="List your jobs.")
    p = sub.add_parser("download", parents=[common], help="save the MP3s of jobs, or one ZIP of them",
                       description="Save the MP3 of each job id or MP3 id (fid, as in the email), or of "
                       "every finished job (--all); with --zip, all of them as one ZIP archive instead "
                       "(job ids only).")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--all", action="store_true", help="every finished job of yours")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output-dir", metavar="DIR", default=".",
                       help="where the MP3s go (default: here)")
    where.add_argument("--zip", metavar="FILE",
                       help="one ZIP archive instead, saved as FILE (a directory: in it, under the "
                       "server's name)")
    p = sub.add_parser("rm", parents=[common], help="delete jobs",
                       description="Delete jobs with their MP3 and video.")
    p.add_argument("job_ids", nargs="+", metavar="JOB_ID")

    p = sub.add_parser("token", parents=[common], help="personal API tokens for scripts",
                       description="Personal API tokens for scripts: each may do what its scopes "
                       "say, until it expires or is revoked. Managed with your login (not with an "
                       "API token).")
    actions = p.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    t = actions.add_parser("create", parents=[common], help="make a token (printed once)",
                           description="Make a token and print it, the only time it is shown.")
    t.add_argument("--name", required=True, help="what it is for (1 to 100 characters)")
    t.add_argument("--scope", dest="scopes", action="append", required=True, metavar="SCOPE",
                   help="what it may do, repeatable: jobs:read (list, status, download), "
                        "jobs:write (upload, delete), webhooks")
    t.add_argument("--expires-in-days", type=int, metavar="DAYS",
                   help="days until it stops working (default: until revoked)")
    actions.add_parser("ls", parents=[common], help="list your tokens (never their secrets)",
                       description="List your tokens with when each was last used.")
    t = actions.add_parser("rm", parents=[common], help="revoke tokens",
                           description="Revoke tokens: each stops working at once.")
    t.add_argument("token_ids", nargs="+", metavar="ID")
    return parser


def tus_metadata(args, path):
    """filename plus the option flags given, as tus Upload-Metadata (tuspy base64-encodes them)."""
    metadata = {"filename": os.path.basename(path)}
    for attr, (key, write) in OPTIONS.items():
        value = getattr(args, attr, None)
        if value is not None:
            metadata[key] = write(value)
    return metadata


class Output:
    """stdout for results, stderr for failures and progress (bars only on a terminal)."""

    def __init__(self, as_json, stdout=None, stderr=None):
        self.as_json = as_json
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    @property
    def bars(self):
        return self.stderr.isatty()

    def result(self, text, data):
        if self.as_json:
            print(json.dumps(data, ensure_ascii=False, indent=None), file=self.stdout)
        elif text:
            print(text, file=self.stdout)

    def error(self, text):
        print("mp3svc: %s" % text, file=self.stderr)

    def bar(self, **kwargs):
        return tqdm(file=self.stderr, disable=not self.bars, leave=False, dynamic_ncols=True, **kwargs)


def read_password(confirm=False):
    if os.environ.get(config.ENV_PASSWORD):
        return os.environ[config.ENV_PASSWORD]
    if not sys.stdin.isatty():  # `mp3svc login me@example.com < password-file`
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("No password: type one at the prompt, pipe it on stdin or set MP3SVC_PASSWORD.")
        return password
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Password (again): ") != password:
        raise CliError("The passwords differ; nothing was changed.")
    return password


# --- commands -------------------------------------------------------------------------------------
def cmd_register(api, args, out):
    password = read_password(confirm=True)
    api.register(args.email, password)
    try:
        return _login(api, args, out, password, "Registered and logged in as %s")
    except ApiError as err:
        if err.code not in ("email_unverified", "invalid_credentials"):
            raise
    # the server confirms addresses first (or the address had an account already: the same answer)
    out.result("Registered %s. Confirm the address: open the link we emailed you (or run mp3svc verify "
               "LINK), then mp3svc login %s. No email? mp3svc resend %s" % ((args.email,) * 3),
               {"email": args.email, "server": api.server, "status": "verification_sent"})
    return 0


def link_token(text):
    """The token of an emailed link (`.../verify?token=...`), or the token itself."""
    text = text.strip()
    if "token=" in text:
        text = text.split("token=", 1)[1].split("&", 1)[0].split("#", 1)[0]
    if not text:
        raise CliError("Give the link from the email, or its token.")
    return text


def cmd_verify(api, args, out):
    answer = api.verify(link_token(args.token))
    out.result("Confirmed %s: now mp3svc login %s" % (answer["email"], answer["email"]), answer)
    return 0


def cmd_resend(api, args, out):
    answer = api.resend(args.email)
    out.result("If %s waits for confirmation, a new link is on its way (older ones stop working)."
               % args.email, answer)
    return 0


def cmd_forgot(api, args, out):
    answer = api.forgot(args.email)
    out.result("If %s has an account, a link to choose a new password is on its way; then "
               "mp3svc reset LINK." % args.email, answer)
    return 0


def cmd_reset(api, args, out):
    token = link_token(args.token)
    api.reset(token, read_password(confirm=True))
    out.result("Password changed; every earlier login ended. Now mp3svc login EMAIL.", {"reset": True})
    return 0


def cmd_logout(api, args, out):
    """Revoke the token on the server first, then forget it (also when the server says it was no
    longer valid). Unreachable server: forget it anyway, and say that it lives on until it expires."""
    revoked, failure = False, None
    if api.token:
        try:
            api.logout()
            revoked = True
        except ApiError as err:
            if err.code == "insufficient_scope":  # MP3SVC_TOKEN holds an API token
                out.error("MP3SVC_TOKEN holds an API token, which logout does not end: revoke it "
                          "with mp3svc token rm ID (logged in) or on the web page.")
                return 1
            if err.status != 401:
                failure = err
        except ConnectionFailed as err:
            failure = err
    forgot = config.forget_login(api.server)
    if failure is not None:
        out.error("%s The saved token was forgotten here, but it works until it expires." % failure)
        return 1
    text = "Logged out." if (revoked or forgot) else "Not logged in."
    if os.environ.get(config.ENV_TOKEN):
        text += " (MP3SVC_TOKEN is still set in your environment.)"
    out.result(text, {"logged_out": True, "revoked": revoked})
    return 0


def cmd_login(api, args, out):
    return _login(api, args, out, read_password(), "Logged in as %s")


def _login(api, args, out, password, text):
    answer = api.login(args.email, password)
    path = config.save_login(api.server, args.email, answer["token"], answer.get("expires_in"))
    out.result("%s (token saved in %s)." % (text % args.email, path),
               {"email": args.email, "server": api.server, "expires_in": answer.get("expires_in"),
                "token_file": str(path)})
    return 0


def cmd_jobs(api, args, out):
    jobs = api.jobs()
    if out.as_json:
        out.result(None, {"jobs": jobs})
        return 0
    if not jobs:
        out.result("No jobs.", None)
        return 0
    rows = [("JOB ID", "STATUS", "SIZE", "CREATED", "FILE")]
    for job in jobs:
        status = job["status"]
        if status == "converting" and job.get("progress") is not None:
            status += " %d%%" % (100 * job["progress"])
        rows.append((job["job_id"], status, _size(job.get("size")), (job.get("created_at") or "")[:19],
                     job.get("filename") or ""))
        if job.get("error"):
            rows.append(("", "", "", "", "  " + job["error"]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4] for r in rows)
    out.result("\n".join(line.rstrip() for line in lines), None)
    return 0


def cmd_download(api, args, out):
    """Each MP3 in turn (a failure does not stop the others), or one ZIP of them all."""
    ids = args.ids
    if args.all:
        ids = [job["job_id"] for job in api.jobs() if job["status"] == "done"]
        if not ids:
            out.result("No finished jobs.", {"downloads": []})
            return 0
    if args.zip:
        return _download_zip(api, ids, args.zip, out)
    failed = 0
    for job_or_fid in ids:
        try:
            fid, path = _download_one(api, job_or_fid, args.output_dir)
            out.result(path, {"id": job_or_fid, "mp3_id": fid, "output": path})
        except (ApiError, CliError) as err:
            if len(ids) == 1 or isinstance(err, ConnectionFailed):
                raise
            failed += 1
            out.error(str(err) if job_or_fid in str(err) else "%s: %s" % (job_or_fid, err))
            out.result(None, {"id": job_or_fid, "error": getattr(err, "code", "error"), "message": str(err)})
    return 1 if failed else 0


def _download_one(api, job_or_fid, directory):
    fid, fallback = job_or_fid, None
    if len(fid) == 32:  # a job id (a fid is 24 hex digits)
        job = api.job(fid)
        if job["status"] != "done":
            reason = ": " + job["error"] if job.get("error") else ""
            raise CliError("Job %s is %s, not done%s." % (fid, job["status"], reason))
        fid, fallback = job["mp3_id"], job.get("filename")
    return fid, download(api, fid, directory, fallback)


def _download_zip(api, job_ids, target, out):
    """POST /jobs/archive: the MP3s of these jobs as one ZIP, saved as `target` (replaced if it exists)
    or, when that is a directory, in it under the server's name (never over an existing file)."""
    response = api.archive(job_ids)
    try:
        size = int(response.headers.get("content-length") or 0) or None
        with out.bar(total=size, unit="B", unit_scale=True, desc="archive") as bar:
            def chunks():
                for chunk in response.iter_bytes():
                    bar.update(len(chunk))
                    yield chunk
            if os.path.isdir(target):
                name = safe_name(disposition_filename(response.headers.get("content-disposition")),
                                 fallback="mp3svc.zip", ext=".zip")
                path = save_stream(chunks(), target, name)
            else:
                path = save_stream(chunks(), os.path.dirname(os.path.abspath(target)),
                                   os.path.basename(target), replace=True)
    finally:
        response.close()
    out.result(path, {"job_ids": job_ids, "output": path, "bytes": os.path.getsize(path)})
    return 0


def cmd_rm(api, args, out):
    failed = 0
    for job_id in args.job_ids:
        try:
            api.delete(job_id)
            out.result("Deleted %s." % job_id, {"job_id": job_id, "deleted": True})
        except ApiError as err:
            failed += 1
            out.error("%s: %s" % (job_id, err))
            out.result(None, {"job_id": job_id, "deleted": False, "error": err.code, "message": err.message})
    return 1 if failed else 0


def cmd_token(api, args, out):
    return TOKEN_COMMANDS[args.token_command](api, args, out)


def cmd_token_create(api, args, out):
    made = api.create_token(args.name, args.scopes, args.expires_in_days)
    if out.as_json:
        out.result(None, made)
        return 0
    out.result(made["token"], None)  # alone on stdout: TOKEN=$(mp3svc token create ...)
    print("Token %s \"%s\" (%s, %s). It is shown only this once: keep it safe; a script sends "
          "it as MP3SVC_TOKEN or 'Authorization: Bearer'." % (
              made["id"], made["name"], " ".join(made["scopes"]),
              "expires " + made["expires_at"][:10] if made.get("expires_at") else "no expiry"),
          file=out.stderr)
    return 0


def cmd_token_ls(api, args, out):
    tokens = api.tokens()
    if out.as_json:
        out.result(None, {"tokens": tokens})
        return 0
    if not tokens:
        out.result("No API tokens.", None)
        return 0
    rows = [("ID", "SCOPES", "CREATED", "EXPIRES", "LAST USED", "NAME")]
    for token in tokens:
        rows.append((token["id"], ",".join(token["scopes"]), _day(token.get("created_at")),
                     _day(token.get("expires_at")) or "never",
                     (token.get("last_used_at") or "never")[:16].replace("T", " "), token["name"]))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5] for r in rows)
    out.result("\n".join(line.rstrip() for line in lines), None)
    return 0


def cmd_token_rm(api, args, out):
    failed = 0
    for token_id in args.token_ids:
        try:
            api.revoke_token(token_id)
            out.result("Revoked %s." % token_id, {"id": token_id, "revoked": True})
        except ApiError as err:
            failed += 1
            out.error("%s: %s" % (token_id, err))
            out.result(None, {"id": token_id, "revoked": False, "error": err.code,
                              "message": err.message})
    return 1 if failed else 0


TOKEN_COMMANDS = {"create": cmd_token_create, "ls": cmd_token_ls, "rm": cmd_token_rm}


def _day(iso):
    return (iso or "")[:10]


def cmd_convert(api, args, out):
    if args.output_dir and not os.path.isdir(args.output_dir):
        raise CliError("%s is not a directory." % args.output_dir)
    api.auth_headers()  # not logged in: say so once, not once per file
    results = {}
    pending = collections.deque()  # (file, job_id): uploaded, converting on the server meanwhile
    store = UploadStore(config.uploads_path())
    try:
        for path in args.files:
            job_id = _upload_when_allowed(api, store, path, args, out, pending, results)
            if job_id is None and results[path]["error"] in FATAL_CODES:
                break  # every other file would fail the same way
            if job_id:
                pending.append((path, job_id))
        while pending and not any(r["error"] in ("invalid_token", "unauthorized") for r in results.values()):
            _finish_oldest(api, pending, results, args, out)
    except (KeyboardInterrupt, Interrupted) as exc:
        jobs = ", ".join(job_id for _, job_id in pending)
        raise Interrupted((str(exc) if isinstance(exc, Interrupted) else "Interrupted.")
                          + (" Uploaded files go on converting on the server (%s): mp3svc jobs, "
                             "mp3svc download JOB_ID." % jobs if jobs else ""))
    finally:
        store.close()
        for path, job_id in pending:
            results.setdefault(path, {"file": path, "status": "converting", "job_id": job_id, "error": None})
        if out.as_json:
            out.result(None, {"files": [results.get(f) or {"file": f, "status": "not_started", "error": None}
                                        for f in args.files]})
    return 0 if all(results.get(f, {}).get("status") == "done" for f in args.files) else 1


def _upload_when_allowed(api, store, path, args, out, pending, results):
    """Upload one file; over the active-job limit, first finish the oldest job of this run.
    Returns the job id, or None with the failure in results."""
    if not os.path.isfile(path):
        results[path] = _failure(path, CliError("No such file."), out, code="no_file")
        return None
    while True:
        try:
            return _upload(api, store, path, tus_metadata(args, path), out)
        except ApiError as err:
            if err.code == "too_many_jobs" and pending:
                _finish_oldest(api, pending, results, args, out)
                continue
            results[path] = _failure(path, err, out)
            return None
        except (ConnectionFailed, OSError) as err:
            results[path] = _failure(path, err, out, code="connection_failed"
                                     if isinstance(err, ConnectionFailed) else "file_error")
            return None


def _upload(api, store, path, metadata, out):
    size = os.path.getsize(path)
    with out.bar(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                 desc="upload " + _short(os.path.basename(path))) as bar:
        def progress(offset, _size):
            bar.update(offset - bar.n)
        return upload(api, store, path, metadata, progress)


def _finish_oldest(api, pending, results, args, out):
    path, job_id = pending[0]
    results[path] = _finish(api, path, job_id, args, out)
    pending.popleft()  # only now: Ctrl-C while waiting leaves it listed as converting on the server


def _finish(api, path, job_id, args, out):
    """Wait for the job, save its MP3; the result entry for this file."""
    try:
        job = wait(api, job_id, os.path.basename(path), out)
        if job["status"] != "done":
            raise ApiError(422, "conversion_failed", job.get("error") or "The conversion failed.")
        directory = args.output_dir or os.path.dirname(os.path.abspath(path))
        output = download(api, job["mp3_id"], directory, job.get("filename") or os.path.basename(path))
    except CliError as err:
        result = _failure(path, err, out, code="connection_failed")
        result["job_id"] = job_id
        return result
    if not out.as_json:
        out.result("%s -> %s" % (path, output), None)
    return {"file": path, "status": "done", "job_id": job_id, "mp3_id": job["mp3_id"], "output": output,
            "error": None}


def _failure(path, err, out, code="error"):
    """Say why on stderr; the result entry (the API's code and sentence when it answered)."""
    out.error("%s: %s" % (path, err))
    return {"file": path, "status": "failed", "error": getattr(err, "code", code),
            "message": getattr(err, "message", str(err))}


def wait(api, job_id, name, out):
    """Poll the job until it is done or failed, with a progress bar; rides out a restarting gateway."""
    polls, trouble_since = 0, None
    with out.bar(total=100, unit="%", desc="convert " + _short(name),
                 bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}") as bar:
        while True:
            try:
                job = api.job(job_id)
                trouble_since = None
            except (ConnectionFailed, ApiError) as err:
                if isinstance(err, ApiError) and err.status not in TRANSIENT:
                    raise
                trouble_since = trouble_since or time.monotonic()
                if time.monotonic() - trouble_since > TRANSIENT_GRACE:
                    raise
                job = {"status": None}
            if job["status"] in FINISHED:
                return job
            if job.get("progress") is not None:
                bar.update(round(100 * job["progress"]) - bar.n)
            time.sleep(POLL_DELAYS[min(polls, len(POLL_DELAYS) - 1)])
            polls += 1


def download(api, fid, directory, source_name=None):
    """Save the MP3 with id fid into directory under the server's name (made safe); returns the path."""
    fallback = os.path.splitext(source_name)[0] + ".mp3" if source_name else "%s.mp3" % fid
    response = api.download(fid)
    try:
        name = safe_name(disposition_filename(response.headers.get("content-disposition")),
                         fallback=safe_name(fallback))
        return save_stream(response.iter_bytes(), directory, name)
    finally:
        response.close()


def _short(name, width=30):
    return name if len(name) <= width else name[:width - 1] + "…"


def _size(n):
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1024


COMMANDS = {"register": cmd_register, "login": cmd_login, "convert": cmd_convert, "jobs": cmd_jobs,
            "download": cmd_download, "rm": cmd_rm, "verify": cmd_verify, "resend": cmd_resend,
            "forgot": cmd_forgot, "reset": cmd_reset, "logout": cmd_logout, "token": cmd_token}


def main(argv=None, transport=None):
    args = build_parser().parse_args(argv)
    out = Output(getattr(args, "json", False))
    server = config.server()
    token, _email = config.saved_login(server)
    api = Api(server, token, transport=transport)
    try:
        status = COMMANDS[args.command](api, args, out)
        signals.work_done()  # its results are out: a Ctrl-C while closing leaves the status as it is
        return status
    except Interrupted as err:
        out.error(str(err))
        return 130
    except KeyboardInterrupt:
        out.error("Interrupted.")
        return 130
    except CliError as err:
        out.error(str(err))
        return 1
    finally:
        api.close()
