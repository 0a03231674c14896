"""Webhooks over the real services, broker, database and ffmpeg, delivered to real HTTP receivers on
127.0.0.1 (WEBHOOK_ALLOW_PRIVATE=true for those; nothing is ever sent beyond this machine): retries
with one delivery id and valid signatures, a receiver that never answers, one behind a redirect,
job.failed, exactly one delivery per outcome however often its event comes, and, with private
addresses refused, this machine's own addresses in all their spellings, at creation and at delivery."""
import json
import time

import pymongo
import pytest
from kombu import Connection
from nameko.standalone.events import event_dispatcher

from services.common import constants as c
from services.common.messaging import CONSUMERS, queue_name
from services.common.metrics import ENTRYPOINT_CALLS
from services.notification import metrics, signing
from devtools.stack import NotReady
from tests.helpers import wait_until
from tests.integration.conftest import ALL_SERVICES, Api, bearer
from tests.integration.receivers import HANG, Receiver

pytestmark = pytest.mark.slow

MP3_READY_QUEUE = queue_name(c.CONVERTER, c.MP3_READY, *CONSUMERS[c.CONVERTER, c.MP3_READY][0])
# this machine's own addresses, in every spelling a URL can give them
OWN_ADDRESSES = ["127.0.0.1", "127.1.2.3", "localhost", "[::1]", "[::ffff:127.0.0.1]", "2130706433",
                 "0.0.0.0", "127.1", "0x7f000001", "[::]", "LOCALHOST.", "[0:0:0:0:0:ffff:7f00:1]"]


@pytest.fixture
def receivers():
    made = []

    def make(*script, **kwargs):
        made.append(Receiver(*script, **kwargs))
        return made[-1]
    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def hooks_stack(runner_factory, service_config, mail_sink):
    """The services with webhooks retried after 1 s (doubling), 1 s to answer."""
    def start(allow_private=True, services=ALL_SERVICES):
        service_config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=mail_sink.port,
                              WEBHOOK_ALLOW_PRIVATE=allow_private, WEBHOOK_TIMEOUT=1,
                              WEBHOOK_RETRY_BASE=1)
        runner_factory(service_config, *services).start()
        api = Api("http://" + service_config["WEB_SERVER_ADDRESS"])
        wait_until(lambda: api.http.get(api.url("/livez")).status_code == 200, 30,
                   message="gateway up")
        api.config = service_config
        return api
    return start


def create(api, token, url, events=(c.JOB_FINISHED,)):
    return api.http.post(api.url("/webhooks"), headers=bearer(token),
                         json={"url": url, "events": list(events)})


def made(api, token, url, events=(c.JOB_FINISHED,)):
    response = create(api, token, url, events)
    assert response.status_code == 201, response.text
    hook = response.json()
    assert set(hook) == {"id", "url", "events", "secret", "created_at"} and hook["url"] == url
    return hook


def deliveries(api, token, hook_id):
    response = api.http.get(api.url("/webhooks/%s/deliveries" % hook_id), headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


def the_delivery(api, token, hook_id, condition, timeout=60, message="the delivery"):
    """The webhook's one delivery once `condition(delivery)` holds; past `timeout`, NotReady
    with the last delivery seen (or none)."""
    seen = []

    def found():
        listed = deliveries(api, token, hook_id)
        assert len(listed) <= 1, listed
        seen[:] = listed
        return listed[0] if listed and condition(listed[0]) else None
    try:
        return wait_until(found, timeout, interval=0.2, message=message)
    except NotReady as exc:
        raise NotReady("%s; the delivery last seen: %s" % (
            exc, json.dumps(seen[0], indent=1) if seen else "none")) from None


def finished_job(api, token, media, name="hooked.mp4"):
    response = api.upload(token, media.video(name, duration=1.0))
    assert response.status_code == 202, response.text
    job = api.wait_job(token, response.json()["job_id"])
    # a failed job owes job.failed, not the job.finished these tests wait for
    assert job["status"] == "done", job
    return job


def counted(result):
    return metrics.WEBHOOK_DELIVERIES.labels(result)._value.get()


def timeline(receiver):
    """Seconds of each arrival after the first (the retry timeline)."""
    first = receiver.arrived[0][0]
    return [round(arrived - first, 2) for arrived, *_ in receiver.arrived]


def test_a_receiver_failing_twice_gets_the_same_signed_delivery_three_times(
        hooks_stack, receivers, media):
    api = hooks_stack()
    token = api.token_for("hooked@example.com")
    receiver = receivers(500, 503, 200)
    hook = made(api, token, receiver.url)
    job = finished_job(api, token, media)
    delivery = the_delivery(api, token, hook["id"], lambda d: d["status"] == c.DELIVERY_DELIVERED)
    assert len(receiver.arrived) == 3 and delivery["attempts"] == 3
    assert [(e["status"], e["result"]) for e in delivery["log"]] == [
        (500, "failed"), (503, "failed"), (200, "delivered")]
    assert (delivery["event"], delivery["job_id"], delivery["next_attempt_at"]) == (
        c.JOB_FINISHED, job["job_id"], None)
    shown = api.job(token, job["job_id"]).json()
    for _, wall, path, headers, raw in receiver.arrived:
        assert path == "/hook" and headers["Content-Type"] == "application/json"
        assert headers["Mp3svc-Delivery"] == delivery["id"]  # the same id on every retry
        assert headers["Mp3svc-Event"] == c.JOB_FINISHED
        assert signing.verify(hook["secret"], raw, headers["Mp3svc-Signature"], now=wall)
        assert abs(int(headers["Mp3svc-Signature"].split(",")[0][2:]) - wall) <= 2
        body = json.loads(raw)
        assert set(body) == {"event", "created_at", "job"} and body["event"] == c.JOB_FINISHED
        assert body["job"] == shown  # exactly as GET /jobs/<id> shows it
    assert not signing.verify("whsec_another", receiver.arrived[0][4],
                              receiver.arrived[0][3]["Mp3svc-Signature"], now=receiver.arrived[0][1])
    # the retry timeline: WEBHOOK_RETRY_BASE=1 doubling (the timer looks every second)
    times = timeline(receiver)
    print("\nretry timeline (s after the first attempt):", times)
    print("delivery log:", json.dumps(delivery["log"], indent=1))
    _, _, _, headers, raw = receiver.arrived[-1]
    print("last attempt's headers:", {k: v for k, v in headers.items() if k.startswith("Mp3svc")})
    print("body:", raw.decode())
    verified = signing.verify(hook["secret"], raw, headers["Mp3svc-Signature"])
    print("signature verified with the secret:", verified)
    assert times[1] >= 0.9 and times[2] - times[1] >= 1.9, times


def test_a_receiver_that_never_answers_times_out_and_is_retried(hooks_stack, receivers, media):
    api = hooks_stack()
    token = api.token_for("silent@example.com")
    receiver = receivers(HANG)
    hook = made(api, token, receiver.url)
    before = counted(metrics.TIMEOUT)
    finished_job(api, token, media, "silent.mp4")
    delivery = the_delivery(api, token, hook["id"],
                            lambda d: sum(e["result"] == "timeout" for e in d["log"]) >= 2,
                            message="two attempts timed out")
    assert delivery["status"] in (c.DELIVERY_PENDING, c.DELIVERY_SENDING)
    for entry in delivery["log"][:2]:
        assert entry["status"] is None and "no answer within 1 s" in entry["error"]
        assert 900 <= entry["ms"] < 5000, entry
    assert len({headers["Mp3svc-Delivery"] for *_, headers, _ in receiver.arrived}) == 1
    assert counted(metrics.TIMEOUT) >= before + 2
    print("\nattempts of a receiver that never answers:", timeline(receiver))


def test_a_redirect_is_not_followed_and_counts_as_a_failure(hooks_stack, receivers, media):
    api = hooks_stack()
    token = api.token_for("moved@example.com")
    elsewhere = receivers(200)
    receiver = receivers(302, headers={"Location": elsewhere.url})
    hook = made(api, token, receiver.url)
    finished_job(api, token, media, "moved.mp4")
    delivery = the_delivery(api, token, hook["id"], lambda d: len(d["log"]) >= 2,
                            message="two attempts")
    assert [e["status"] for e in delivery["log"][:2]] == [302, 302]
    assert all("redirects are not followed" in e["error"] for e in delivery["log"][:2])
    assert delivery["status"] != c.DELIVERY_DELIVERED and elsewhere.arrived == []


def test_a_failed_conversion_is_delivered_as_job_failed(hooks_stack, receivers, tmp_path):
    api = hooks_stack()
    token = api.token_for("broken@example.com")
    on_failed, on_finished = receivers(204), receivers(204)
    failed_hook = made(api, token, on_failed.url, [c.JOB_FAILED])
    finished_hook = made(api, token, on_finished.url, [c.JOB_FINISHED])
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not media at all" * 1000)
    job = api.wait_job(token, api.upload(token, str(junk)).json()["job_id"])
    assert job["status"] == "failed" and job["error"], job
    delivery = the_delivery(api, token, failed_hook["id"],
                            lambda d: d["status"] == c.DELIVERY_DELIVERED)
    [(_, wall, _, headers, raw)] = on_failed.arrived
    assert headers["Mp3svc-Event"] == c.JOB_FAILED == delivery["event"]
    assert signing.verify(failed_hook["secret"], raw, headers["Mp3svc-Signature"], now=wall)
    body = json.loads(raw)
    assert body["event"] == c.JOB_FAILED and body["job"] == api.job(token, job["job_id"]).json()
    assert body["job"]["status"] == "failed" and body["job"]["error"] == job["error"]
    # both webhooks were looked at in the same handling of the outcome: job.finished owes nothing
    assert deliveries(api, token, finished_hook["id"]) == [] and on_finished.arrived == []


def test_a_duplicated_outcome_event_gives_one_delivery(hooks_stack, receivers, media):
    api = hooks_stack()
    token = api.token_for("twice@example.com")
    receiver = receivers(200)
    hook = made(api, token, receiver.url)
    job = finished_job(api, token, media, "twice.mp4")
    the_delivery(api, token, hook["id"], lambda d: d["status"] == c.DELIVERY_DELIVERED)
    client = pymongo.MongoClient(api.config["MONGO_URI"], serverSelectionTimeoutMS=3000)
    try:
        record = client[api.config["MONGO_DB"]][c.JOBS_COLLECTION].find_one({"_id": job["job_id"]})
    finally:
        client.close()
    payload = {"job_id": job["job_id"], "mp3_id": job["mp3_id"], "owner": "twice@example.com",
               "filename": "twice.mp4", "outcome_id": record["outcome_id"]}
    handled = ENTRYPOINT_CALLS.labels(c.NOTIFICATION, "handle_mp3_ready", "ok")
    before = handled._value.get()
    dispatch = event_dispatcher({"AMQP_URI": api.config["AMQP_URI"]})
    for _ in range(3):
        dispatch(c.CONVERTER, c.MP3_READY, dict(payload))
    wait_until(lambda: handled._value.get() >= before + 3, 30, message="the duplicates handled")
    with Connection(api.config["AMQP_URI"]) as connection:
        assert connection.default_channel.queue_declare(
            MP3_READY_QUEUE, passive=True).message_count == 0
    [delivery] = deliveries(api, token, hook["id"])
    assert delivery["attempts"] == 1 and delivery["status"] == c.DELIVERY_DELIVERED
    assert len(receiver.arrived) == 1


def test_this_machine_s_own_addresses_are_refused_in_every_spelling(hooks_stack, receivers):
    from services.auth.service import AuthService
    from services.gateway.service import GatewayService
    from services.notification.service import NotificationService
    api = hooks_stack(allow_private=False,
                      services=(GatewayService, AuthService, NotificationService))
    token = api.token_for("refused@example.com")
    receiver = receivers(200)
    port = receiver.server_address[1]
    for host in OWN_ADDRESSES:
        for url in ("http://%s:%d/hook" % (host, port), "https://%s/" % host):
            response = create(api, token, url)
            assert response.status_code == 400, (url, response.text)
            assert response.json()["error"] == "invalid_url", (url, response.json())
    for url in ("ftp://example.org/", "file:///etc/passwd", "https://user:pw@example.org/", "hooks"):
        response = create(api, token, url)
        assert (response.status_code, response.json()["error"]) == (400, "invalid_url"), url
    for body in ({"url": "https://93.184.215.14/"}, {"url": "https://93.184.215.14/", "events": []},
                 {"url": "https://93.184.215.14/", "events": ["job.started"]}, {"events": ["job.failed"]}):
        response = api.http.post(api.url("/webhooks"), headers=bearer(token), json=body)
        assert (response.status_code, response.json()["error"]) == (400, "invalid_input"), body
    assert receiver.arrived == []
    # a public literal address is accepted (nothing is resolved; no job finishes: nothing is sent)
    hook = made(api, token, "https://93.184.215.14/in", [c.JOB_FAILED, c.JOB_FINISHED])
    assert hook["events"] == [c.JOB_FAILED, c.JOB_FINISHED]
    listed = api.http.get(api.url("/webhooks"), headers=bearer(token)).json()["webhooks"]
    assert listed == [{k: v for k, v in hook.items() if k != "secret"}]  # the secret shown once
    assert deliveries(api, token, hook["id"]) == []
    # another account's webhook is not found; a malformed id is refused; no token, 401
    other = api.token_for("other@example.com")
    for method, path in (("DELETE", "/webhooks/%s" % hook["id"]),
                         ("GET", "/webhooks/%s/deliveries" % hook["id"])):
        response = api.http.request(method, api.url(path), headers=bearer(other))
        assert (response.status_code, response.json()["error"]) == (404, "not_found")
        response = api.http.request(method, api.url(path.replace(hook["id"], "nope")),
                                    headers=bearer(token))
        assert (response.status_code, response.json()["error"]) == (400, "invalid_id")
        assert api.http.request(method, api.url(path)).status_code == 401
    assert api.http.get(api.url("/webhooks"), headers=bearer(other)).json() == {"webhooks": []}
    response = api.http.delete(api.url("/webhooks/%s" % hook["id"]), headers=bearer(token))
    assert response.status_code == 204
    assert api.http.get(api.url("/webhooks"), headers=bearer(token)).json() == {"webhooks": []}


def test_an_address_gone_private_after_creation_is_refused_at_delivery(hooks_stack, receivers, media):
    """As if the webhook's name had resolved to a public address when it was made and to this machine
    at delivery (DNS rebinding): the address the delivery would connect to is checked again."""
    api = hooks_stack(allow_private=False)
    token = api.token_for("rebound@example.com")
    receiver = receivers(200)
    hook = made(api, token, "https://93.184.215.14/in")
    client = pymongo.MongoClient(api.config["MONGO_URI"], serverSelectionTimeoutMS=3000)
    try:  # what the name now reaches (the store as notification keeps it)
        client[api.config["MONGO_DB"]][c.WEBHOOKS_COLLECTION].update_one(
            {"_id": hook["id"]}, {"$set": {"url": receiver.url.replace("127.0.0.1", "localhost")}})
    finally:
        client.close()
    started = time.monotonic()
    finished_job(api, token, media, "rebound.mp4")
    delivery = the_delivery(api, token, hook["id"], lambda d: len(d["log"]) >= 2,
                            message="two refused attempts")
    assert all("not a public address" in e["error"] and e["status"] is None
               for e in delivery["log"]), delivery["log"]
    assert receiver.arrived == [] and time.monotonic() - started < 60
