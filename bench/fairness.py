"""The fairness part: with ONE converter worker, user A queues 4 jobs of the 10-minute video with
`normalize=true`, then user B uploads the 8-second clip; B's upload->done and A's total time.

Two rounds on the same stack, the same converter and the same media:

  * before (FIFO order): the clip is A's own fifth job. Within one user the converter takes the
    oldest job first, so the clip waits behind all four, which is the order every user got before
    fair sharing (commit 3a2bc22, services/converter/fairness.py), at today's conversion speed;
  * after (fair sharing): the clip is user B's; it waits for at most the one job of A that is
    converting when it arrives.

The converter is frozen (SIGSTOP) while the five uploads go in and released (SIGCONT) after the
clip's, so A's four jobs are all queued when the clip arrives, however fast uploads are. The clip's
upload->done runs from its first byte, A's total from the release to A's fourth job done; both end
at the job records' `updated_at` at `done` (this machine's clock).
"""
import os
import signal
import time

from bench.client import Api
from bench.measure import wait_batch
from bench.stack import CONVERTER_QUEUE
from services.common import constants as c

LONG_JOBS = 4
LONG_OPTIONS = {"normalize": "true"}


def run_fairness(stack, long_media, clip_media, observations):
    """[before row, after row]: each {label, clip_s, a_total_s, a_done_before_clip, ...}."""
    stack.start_converters(1, 1)
    stack.wait_consumers(CONVERTER_QUEUE, 1)
    rows = []
    for label, own_user in (("before: FIFO order (the clip is A's 5th job)", False),
                            ("after: fair sharing (the clip is B's)", True)):
        rows.append(dict(label=label, **one_round(stack, long_media, clip_media, own_user,
                                                  observations)))
    return rows


def one_round(stack, long_media, clip_media, own_user, observations):
    a = Api("127.0.0.1", stack.gateway_port)
    a.sign_up()
    b = a
    if own_user:
        b = Api("127.0.0.1", stack.gateway_port)
        b.sign_up()
    pids = stack.pids(*stack.converters)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        a_jobs = []
        for index in range(LONG_JOBS):
            status, payload, _ = a.upload(long_media["path"], filename=f"long{index}.mp4",
                                          fields=LONG_OPTIONS)
            if status != 202:
                raise RuntimeError(f"fairness: A's upload {index}: {status} {payload}")
            a_jobs.append(payload["job_id"])
        clip_started = time.time()
        status, payload, _ = b.upload(clip_media["path"], filename="clip.mp4")
        if status != 202:
            raise RuntimeError(f"fairness: the clip's upload: {status} {payload}")
        clip = payload["job_id"]
        time.sleep(1.0)        # let the broker route the events
    finally:
        released = time.time()
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 300 + LONG_JOBS * 3 * long_media["seconds"]
    if own_user:
        _, clip_finished = wait_batch(b, [clip], deadline)
        _, a_finished = wait_batch(a, a_jobs, deadline)
    else:
        _, a_finished = wait_batch(a, a_jobs + [clip], deadline)
        clip_finished = {clip: a_finished.pop(clip)}
    failed = [job for job, (state, _) in list(a_finished.items()) + list(clip_finished.items())
              if state != c.DONE]
    if failed:
        observations.append(f"fairness: {len(failed)} job(s) failed")
    clip_done = clip_finished[clip][1]
    a_done = [at for _, at in a_finished.values()]
    return {"clip_s": clip_done - clip_started, "clip_after_release_s": clip_done - released,
            "a_total_s": max(a_done) - released,
            "a_done_before_clip": sum(1 for at in a_done if at < clip_done), "failed": len(failed)}
