"""Saving a download: the name from Content-Disposition made safe, never outside the chosen directory,
never over an existing file."""
import os
import re
import tempfile
import unicodedata
from urllib.parse import unquote

MAX_NAME_BYTES = 240  # under the usual 255-byte limit, with room for " (12)"
_EXT = re.compile(r"filename\*\s*=\s*([A-Za-z0-9_-]*)'[^']*'([^;\s]+)", re.I)
_QUOTED = re.compile(r'filename\s*=\s*"((?:[^"\\]|\\.)*)"', re.I)
_TOKEN = re.compile(r"filename\s*=\s*([^;\s\"]+)", re.I)
# control, bidi and zero-width characters, and what Windows forbids in names
_UNSAFE = re.compile(r'[\x00-\x1f\x7f\u0080-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff<>:"|?*]')


def disposition_filename(header):
    """The file name a Content-Disposition header offers (filename* preferred), or None."""
    if not header:
        return None
    match = _EXT.search(header)
    if match:
        charset = match.group(1) or "utf-8"
        try:
            return unquote(match.group(2), encoding=charset, errors="replace")
        except LookupError:  # an unknown charset
            return unquote(match.group(2), errors="replace")
    match = _QUOTED.search(header)
    if match:
        return re.sub(r"\\(.)", r"\1", match.group(1))
    match = _TOKEN.search(header)
    return match.group(1) if match else None


def safe_name(name, fallback="audio.mp3", ext=".mp3"):
    """A plain file name: no directories, no control characters, no leading dots, ends in `ext`."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(" .")
    if not name:
        name = fallback
    stem, dot, given = name.rpartition(".")
    if not dot or "." + given.lower() != ext:
        stem = name
    stem = stem.strip(" .") or "audio"
    while len(stem.encode("utf-8")) > MAX_NAME_BYTES - len(ext):
        stem = stem[:-1]
    return stem + ext


def save_stream(chunks, directory, name, replace=False):
    """Write the byte chunks into directory under name, or `name (1).mp3`... when that exists
    (`replace`: over it); returns the path. A failed or interrupted download leaves nothing behind."""
    directory = os.path.abspath(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".mp3svc-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.chmod(tmp, 0o666 & ~_umask())
        if replace:
            target = os.path.join(directory, name)
            os.replace(tmp, target)
            return target
        stem, ext = os.path.splitext(name)
        for n in range(1000):
            target = os.path.join(directory, name if n == 0 else "%s (%d)%s" % (stem, n, ext))
            try:
                os.link(tmp, target)  # fails rather than replace an existing file
                return target
            except FileExistsError:
                continue
            except OSError:  # a file system without hard links
                if not os.path.lexists(target):
                    os.replace(tmp, target)
                    return target
        raise FileExistsError("%s and 999 numbered copies exist in %s" % (name, directory))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
