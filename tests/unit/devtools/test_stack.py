"""devtools.stack: what the test processes inherit, and waiting on a condition."""
import subprocess
import sys

import pytest

from devtools.stack import NotReady, Stack, clean_env, wait_until


def test_clean_env_passes_only_path_home_lang_and_the_given_values(monkeypatch):
    monkeypatch.setenv("MONGO_URI", "mongodb://leaked:1/")
    monkeypatch.setenv("PATH", "/usr/bin")
    env = clean_env(SMTP_PORT=1025)
    assert env["PATH"] == "/usr/bin" and env["SMTP_PORT"] == "1025"
    assert set(env) <= {"PATH", "HOME", "LANG", "SMTP_PORT"}


def test_children_see_only_the_stack_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LEAKED_FROM_CALLER", "1")
    stack = Stack(tmp_path, clean_env(GIVEN="yes"))
    proc = stack.spawn("env", [sys.executable, "-c", "import os; print(sorted(os.environ))"])
    assert proc.wait(30) == 0
    names = eval(stack.log("env"))
    assert "GIVEN" in names and "LEAKED_FROM_CALLER" not in names


def test_wait_until_returns_the_value_or_fails_when_the_process_exits():
    assert wait_until(lambda: 7, timeout=1) == 7
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(NotReady, match="exited with status 0"):
        wait_until(lambda: False, timeout=30, message="never", proc=proc)
    with pytest.raises(NotReady, match="timed out"):
        wait_until(lambda: False, timeout=0.2, interval=0.05)
