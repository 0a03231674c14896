"""What is left in GridFS, seen from outside the services: the checks behind "nothing half-stored".

MongoDB shows every chunk to any query. nx-27017 shows chunks only to a query naming their
`files_id`, hides the chunks of an upload that is not committed, and keeps a placeholder files
document (empty filename, length 0) for such an upload until it is committed or deleted. Counting
files documents as well as chunks therefore sees an upload left behind on either server
(tests/integration/test_storage_provider.py checks that it does).
"""
import pymongo

from services.common import constants as c


def chunk_count(db, bucket, file_id):
    return len(list(db[bucket + ".chunks"].find({"files_id": file_id}, {"n": 1})))


def leftovers(db, bucket=c.VIDEOS_BUCKET):
    """(files documents, chunks) in a bucket. find(), not count_documents(): nx-27017 cannot
    count a collection never written to."""
    file_ids = [doc["_id"] for doc in db[bucket + ".files"].find({}, {"_id": 1})]
    chunks = max(len(list(db[bucket + ".chunks"].find({}, {"n": 1}))),
                 sum(chunk_count(db, bucket, file_id) for file_id in file_ids))
    return len(file_ids), chunks


def leftovers_at(uri, name, bucket=c.VIDEOS_BUCKET):
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=3000)
    try:
        return leftovers(client[name], bucket)
    finally:
        client.close()
