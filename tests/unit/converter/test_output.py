"""services/converter/output.py: the MP3 stored while ffmpeg writes it (a real local file growing
as ffmpeg's would, chunks kept by a fake PlacedFile), and the tag put in front of a local file."""
import eventlet
import pytest
from pymongo.errors import AutoReconnect

from services.converter import output as output_module
from services.converter.output import LocalMp3, StoredMp3
from tests.helpers import wait_until

CHUNK = 1024
ROOM = 300


class Placed:
    """A stand-in for storage.gridio.PlacedFile: chunks in a dict, a chunk never stored twice."""
    made = []

    def __init__(self, fail_at=None):
        self.chunk_size = CHUNK
        self.file_id = len(Placed.made)
        self.chunks, self.length, self.aborted, self.fail_at = {}, None, False, fail_at
        self.batches = []  # the sizes of put_all's batches
        Placed.made.append(self)

    def put(self, n, data):
        assert n not in self.chunks and not self.aborted
        assert 0 < len(data) <= CHUNK
        if n == self.fail_at:
            raise AutoReconnect("reset")
        self.chunks[n] = bytes(data)

    def put_all(self, pieces):
        self.batches.append(len(pieces))
        for n, data in pieces:
            self.put(n, data)

    def finish(self, length):
        assert sorted(self.chunks) == list(range(len(self.chunks)))
        assert all(len(self.chunks[n]) == CHUNK for n in range(len(self.chunks) - 1))
        self.length = length

    def abort(self):
        self.aborted = True

    def data(self):
        return b"".join(self.chunks[n] for n in sorted(self.chunks))


@pytest.fixture(autouse=True)
def fresh():
    Placed.made.clear()


def output(tmp_path, **kwargs):
    path = tmp_path / "audio.mp3"
    return StoredMp3(lambda: Placed(**kwargs), str(path), poll=0.01, head_room=ROOM), path


def test_the_audio_is_stored_while_it_is_written_and_the_head_last(tmp_path):
    mp3, path = output(tmp_path)
    mp3.reset()
    tag = b"ID3" + b"t" * 97
    mp3.begin(len(tag))
    audio = bytes(range(256)) * 40  # 10240 bytes
    with open(path, "r+b") as out:
        out.write(audio[:5000])
        out.flush()
        placed = Placed.made[-1]
        # the chunks the file holds past the tag and the room for ffmpeg's rewrite: stored now
        wait_until(lambda: sorted(placed.chunks) == [1, 2, 3], timeout=5)
        eventlet.sleep(0.05)
        assert sorted(placed.chunks) == [1, 2, 3]  # not the one ffmpeg has not finished
        out.write(audio[5000:])
        out.seek(0)
        out.write(b"XING")  # ffmpeg rewrites its first frame when it ends
    final = b"XING" + audio[4:]
    assert mp3.finish(tag) == len(tag) + len(audio)
    mp3.commit()
    assert placed.data() == tag + final and placed.length == len(tag) + len(audio)
    assert len(Placed.made) == 1


def test_a_tag_of_another_size_than_planned_stores_every_chunk_again(tmp_path):
    mp3, path = output(tmp_path)
    mp3.reset()
    mp3.begin(100)
    audio = b"a" * 6000
    path.write_bytes(audio)
    wait_until(lambda: len(Placed.made[0].chunks) >= 4, timeout=5)
    tag = b"ID3" + b"b" * 500
    assert mp3.finish(tag) == len(tag) + len(audio)
    mp3.commit()
    first, second = Placed.made
    assert first.aborted and not second.aborted
    assert second.data() == tag + audio and second.length == len(tag) + len(audio)


def test_a_tag_bigger_than_a_chunk_and_no_plan(tmp_path):
    mp3, path = output(tmp_path)
    mp3.reset()
    audio = b"c" * 2500
    path.write_bytes(audio)
    tag = b"ID3" + b"d" * 2997  # three chunks of tag, then audio
    assert mp3.finish(tag) == 5500
    mp3.commit()
    assert Placed.made[0].data() == tag + audio


def test_what_is_left_at_the_end_goes_in_batches_of_at_most_put_at_once(tmp_path, monkeypatch):
    """The whole MP3 stored again (no plan here), the head chunks of a big tag included: at
    most PUT_AT_ONCE chunks a round trip, so memory stays flat."""
    monkeypatch.setattr(output_module, "PUT_AT_ONCE", 4)
    mp3, path = output(tmp_path)
    mp3.reset()
    audio = bytes(range(256)) * 40  # ten chunks
    path.write_bytes(audio)
    tag = b"ID3" + b"p" * (9 * CHUNK - 3)  # nine chunks of tag, then the audio's head
    assert mp3.finish(tag) == len(tag) + len(audio)
    mp3.commit()
    placed = Placed.made[0]
    assert placed.data() == tag + audio
    assert max(placed.batches) == 4 and sum(placed.batches) == len(placed.chunks)


def test_a_short_mp3_fits_in_the_head(tmp_path):
    mp3, path = output(tmp_path)
    mp3.reset()
    mp3.begin(0)
    path.write_bytes(b"e" * 10)
    assert mp3.finish(b"") == 10
    mp3.commit()
    assert Placed.made[0].data() == b"e" * 10 and sorted(Placed.made[0].chunks) == [0]


def test_a_storage_error_while_following_is_raised_at_the_end_and_abort_leaves_nothing(tmp_path):
    mp3, path = output(tmp_path, fail_at=2)
    mp3.reset()
    mp3.begin(10)
    path.write_bytes(b"f" * 8000)
    wait_until(lambda: 1 in Placed.made[0].chunks, timeout=5)
    with pytest.raises(AutoReconnect):
        mp3.finish(b"ID3" + b"g" * 7)
    mp3.abort()
    assert Placed.made[0].aborted and mp3.file_id is None


def test_a_new_attempt_starts_from_nothing(tmp_path):
    mp3, path = output(tmp_path)
    mp3.reset()
    mp3.begin(10)
    path.write_bytes(b"old" * 3000)
    wait_until(lambda: Placed.made[0].chunks, timeout=5)
    mp3.reset()  # the pipe gave no audio: the attempt from a spooled file
    assert Placed.made[0].aborted and path.read_bytes() == b""
    path.write_bytes(b"new" * 1000)
    assert mp3.finish(b"") == 3000
    mp3.commit()
    assert Placed.made[-1].data() == b"new" * 1000


def test_once_stopped_it_stores_no_more(tmp_path):
    stop = []
    path = tmp_path / "audio.mp3"
    mp3 = StoredMp3(lambda: Placed(), str(path), should_stop=lambda: bool(stop), poll=0.01,
                    head_room=ROOM)
    mp3.reset()
    mp3.begin(10)
    stop.append(True)  # the lease is lost
    path.write_bytes(b"h" * 8000)
    eventlet.sleep(0.1)
    assert Placed.made[0].chunks == {}


def test_locally_the_tag_goes_in_front_of_the_file(tmp_path):
    path = tmp_path / "out.mp3"
    local = LocalMp3(str(path))
    path.write_bytes(b"stale")
    local.reset()
    assert path.read_bytes() == b""
    path.write_bytes(b"audio")
    assert local.finish(b"ID3tag") == 11 and path.read_bytes() == b"ID3tagaudio"
    assert local.finish(b"") == 11
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp3"]
