"""Where the client keeps its state: the server's address, saved logins (mode 0600), resumable uploads."""
import json
import os
import tempfile
import time

import platformdirs

APP = "mp3svc"
DEFAULT_SERVER = "http://127.0.0.1:8080"
ENV_SERVER = "MP3SVC_SERVER"
ENV_TOKEN = "MP3SVC_TOKEN"
ENV_PASSWORD = "MP3SVC_PASSWORD"


def server():
    return (os.environ.get(ENV_SERVER) or DEFAULT_SERVER).rstrip("/")


def credentials_path():
    return platformdirs.user_config_path(APP) / "credentials.json"


def uploads_path():
    """The map (file, options, server) -> tus upload URL that lets `convert` resume."""
    return platformdirs.user_cache_path(APP) / "uploads.json"


def _load(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_private(path, data):
    """Write JSON readable by the owner only (0600, directory 0700), replacing the file atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".%s." % path.name)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def saved_login(server_url):
    """(token, email) to use with server_url: MP3SVC_TOKEN first, else what `login` saved for it."""
    if os.environ.get(ENV_TOKEN):
        return os.environ[ENV_TOKEN].strip(), None
    entry = _load(credentials_path()).get(server_url) or {}
    return entry.get("token"), entry.get("email")


def forget_login(server_url):
    """Drop what `login` saved for server_url; True when there was something."""
    path = credentials_path()
    data = _load(path)
    if server_url not in data:
        return False
    del data[server_url]
    write_private(path, data)
    return True


def save_login(server_url, email, token, expires_in):
    """Tokens are kept per server, so one server's token is never sent to another."""
    path = credentials_path()
    data = _load(path)
    data[server_url] = {"email": email, "token": token,
                        "expires_at": int(time.time()) + int(expires_in) if expires_in else None}
    write_private(path, data)
    return path
