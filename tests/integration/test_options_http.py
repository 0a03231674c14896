"""Conversion options through the HTTP API: validated at the gateway, stored on the job, echoed,
applied by the converter; live progress and the MP3's duration and size on the job."""
import os

import mutagen.mp3

from tests.helpers import probe, wait_until
from tests.integration.conftest import bearer


def upload(stack, token, path, **fields):
    with open(path, "rb") as handle:
        return stack.http.post(stack.url("/upload"), headers=bearer(token), data=fields,
                               files={"file": (os.path.basename(path), handle)})


def test_options_are_applied_echoed_and_progress_rises(stack, media, tmp_path):
    token = stack.token_for("options@example.com")
    video = media.video("options.mkv", duration=90, size="32x32", rate=1)
    response = upload(stack, token, video, bitrate="96", sample_rate="22050", channels="1",
                      start="0:05", end="65.5", title="Quarterly\r\nreview", cover="none")
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]

    seen = []

    def finished():
        body = stack.job(token, job_id).json()
        seen.append(body["progress"])
        return body if body["status"] in ("done", "failed") else None
    job = wait_until(finished, 120, interval=0.05, message="the job to finish")
    assert job["status"] == "done", job
    assert job["options"] == {"bitrate": 96, "sample_rate": 22050, "channels": 1, "start": 5.0,
                              "end": 65.5, "title": "Quarterly review", "cover": "none"}
    assert seen == sorted(seen) and seen[-1] == 1.0 and all(0.0 <= p <= 1.0 for p in seen)
    assert abs(job["duration"] - 60.5) < 0.1

    mp3 = stack.download(token, job["mp3_id"])
    assert mp3.status_code == 200 and len(mp3.content) == job["size"]
    path = tmp_path / "out.mp3"
    path.write_bytes(mp3.content)
    _, duration, codecs = probe(path)
    assert codecs == ["mp3"] and abs(duration - 60.5) < 0.1
    audio = mutagen.mp3.MP3(str(path))
    assert audio.info.bitrate == 96000 and audio.info.sample_rate == 22050
    assert audio.info.channels == 1
    assert str(audio.tags["TIT2"]) == "Quarterly review"
    assert not audio.tags.getall("APIC")


def test_bad_and_unknown_options_are_refused_naming_the_field(stack, media):
    token = stack.token_for("badoptions@example.com")
    video = media.video("bad-options.mp4", duration=1.0)
    for fields, named in [({"bitrate": "100"}, "bitrate"), ({"quality": "2", "bitrate": "128"},
                          "bitrate"), ({"start": "10", "end": "5"}, "end"),
                          ({"channels": "3"}, "channels"), ({"bitrat": "128"}, "bitrat"),
                          ({"title": "x" * 300}, "title")]:
        response = upload(stack, token, video, **fields)
        assert response.status_code == 400, (fields, response.text)
        body = response.json()
        assert body["error"] == "invalid_option" and named in body["message"], (fields, body)
    assert stack.http.get(stack.url("/jobs"), headers=bearer(token)).json()["jobs"] == []
