"""The deliveries' signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`."""
import hashlib
import hmac

from services.notification import signing

SECRET = "whsec_" + "ab" * 32
BODY = b'{"event": "job.finished", "job": {"job_id": "%s"}}' % (b"a" * 32)


def test_the_signature_is_the_contract_s_hmac():
    header = signing.signature(SECRET, BODY, 1767225600)
    expected = hmac.new(SECRET.encode(), b"1767225600." + BODY, hashlib.sha256).hexdigest()
    assert header == "t=1767225600,v1=" + expected


def test_verify_accepts_it_and_refuses_any_change():
    now = 1767225600
    header = signing.signature(SECRET, BODY, now)
    assert signing.verify(SECRET, BODY, header, now=now + 10)
    assert not signing.verify(SECRET, BODY + b" ", header, now=now)                # body changed
    assert not signing.verify("whsec_other", BODY, header, now=now)               # other secret
    assert not signing.verify(SECRET, BODY, header.replace("t=1767225600", "t=1767225601"), now=now)
    assert not signing.verify(SECRET, BODY, header, now=now + signing.TOLERANCE + 1)  # a replay
    for broken in ("", "v1=abc", "t=x,v1=abc", "nonsense", None):
        assert not signing.verify(SECRET, BODY, broken, now=now)


def test_the_readme_s_receiver_code_verifies_it(tmp_path):
    """The few lines of Python the README gives receivers, run as they are written there."""
    import pathlib
    import re
    import time
    readme = (pathlib.Path(__file__).parents[3] / "README.md").read_text()
    code = re.search(r"```python\n(  import hashlib, hmac, time\n.*?)```", readme, re.S).group(1)
    namespace = {}
    exec(compile("\n".join(line[2:] for line in code.splitlines()), "README", "exec"), namespace)
    header = signing.signature(SECRET, BODY, int(time.time()))
    assert namespace["verify"](SECRET, BODY, header)
    assert not namespace["verify"](SECRET, BODY + b"x", header)
    old = signing.signature(SECRET, BODY, int(time.time()) - 3600)
    assert not namespace["verify"](SECRET, BODY, old)
