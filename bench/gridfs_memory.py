#!/usr/bin/env python3
"""Peak RSS of the services' GridFS write and read paths, outside nameko (docs/performance.md).

Each variant runs in its own process against MONGO_URI (default: starts nx-27017 from
.venv-mongo on a free port) and prints time and peak RSS (VmHWM, reset after set-up):

  parser      the gateway's MultipartReceiver (werkzeug multipart) into a sink: no storage
  storage     services.gateway.store UploadStore.admit/open_file() + write/commit, plain Python
  storage-ev  the same after eventlet.monkey_patch(), as in a nameko service
  direct-ev   chunk documents inserted one by one ({files_id, n, data}), files doc at the end,
              under eventlet: the suggested writer
  read-ev     FileStore.open() + iter_range(1 MiB) of the stored file, under eventlet

Usage: .venv/bin/python -m bench.gridfs_memory [--file bench/media/clip-60m.mp4]
       [--mongo-uri URI] [--variants parser,storage,storage-ev,direct-ev,read-ev]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from bench import HERE, ROOT, gen_media
from devtools.stack import Stack, clean_env

VARIANTS = ("parser", "storage", "storage-ev", "direct-ev", "read-ev")

CHILD = r'''
import sys
variant, uri, path = sys.argv[1:4]
if variant.endswith("-ev"):
    import eventlet
    eventlet.monkey_patch()
import datetime, io, os, time
sys.path.insert(0, ROOT)

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024

def blocks():
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return
            yield b

def reset():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

if variant == "parser":
    from services.gateway.multipart import MultipartReceiver
    boundary = "benchboundary"
    head = ('--%s\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
            'Content-Type: video/mp4\r\n\r\n' % boundary).encode()
    tail = ("\r\n--%s--\r\n" % boundary).encode()
    class Input:
        def __init__(self):
            self.parts = [io.BytesIO(head), open(path, "rb"), io.BytesIO(tail)]
        def read(self, n):
            while self.parts:
                b = self.parts[0].read(n)
                if b:
                    return b
                self.parts.pop(0)
            return b""
    class Req:
        headers = {"Content-Type": "multipart/form-data; boundary=" + boundary}
        content_length = len(head) + os.path.getsize(path) + len(tail)
        environ = {"wsgi.input": Input()}
    class Sink:
        size = 0
        def write(self, d): self.size += len(d)
    reset(); t0 = time.time()
    MultipartReceiver(1 << 31).receive(Req(), Sink())
else:
    import pymongo
    from bson import Binary, ObjectId
    from services.common import constants as c
    from services.gateway.store import GatewayStores
    st = GatewayStores(pymongo.MongoClient(uri)["gridfs_memory"])
    st.ping()

    def insert_direct():
        """Chunk documents inserted one by one, the files document at the end."""
        fid, n, size = ObjectId(), 0, 0
        chunks = st.db["videos.chunks"]
        for b in blocks():
            chunks.insert_one({"files_id": fid, "n": n, "data": Binary(b)})
            n += 1
            size += len(b)
        st.db["videos.files"].insert_one({
            "_id": fid, "length": size, "chunkSize": 1 << 20, "filename": "a.mp4",
            "uploadDate": datetime.datetime.now(datetime.timezone.utc)})
        return fid
    if variant in ("storage", "storage-ev"):
        reset(); t0 = time.time()
        admission = st.uploads.admit("bench@example.com", None, 1 << 40, 1 << 20)
        up = st.uploads.open_file(admission)
        for b in blocks():
            up.write(b)
        up.commit("a.mp4")
        fid = up.file_id
    elif variant == "direct-ev":
        reset(); t0 = time.time()
        fid = insert_direct()
    elif variant == "read-ev":
        fid = insert_direct()
        import gc; gc.collect()
        reset(); t0 = time.time()
        for _ in st.files.open(c.VIDEOS_BUCKET, fid).iter_range(0, None, 1 << 20):
            pass
    elapsed = time.time() - t0
    st.files.delete(c.VIDEOS_BUCKET, fid)
    print("%-10s %6.1f s  peak RSS %5.0f MB" % (variant, elapsed, status("VmHWM")))
    sys.exit(0)
print("%-10s %6.1f s  peak RSS %5.0f MB" % (variant, time.time() - t0, status("VmHWM")))
'''.replace("ROOT", repr(ROOT), 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file", default=os.path.join(HERE, "media", "clip-60m.mp4"))
    ap.add_argument("--mongo-uri")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args(argv)
    if not os.path.exists(args.file):
        gen_media.ensure(["clip-60m"])
    nx = tmp = None
    uri = args.mongo_uri
    try:
        if not uri:
            tmp = tempfile.mkdtemp(prefix="gridfs-mem-")
            nx = Stack(tmp, clean_env())
            uri = nx.start_mongo(os.path.join(tmp, "data"))
        print(f"{os.path.basename(args.file)}: {os.path.getsize(args.file) / 1e6:.0f} MB in 1 MiB blocks")
        for v in args.variants.split(","):
            subprocess.run(["nice", "-n", "19", sys.executable, "-W", "ignore", "-c", CHILD,
                            v, uri, args.file], cwd=ROOT, check=False)
    finally:
        if nx:
            nx.stop()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
