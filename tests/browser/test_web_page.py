"""The web page in a real browser (Debian's chromium via Playwright) against all four services;
the walk through the page in named steps (a failure says which step broke)."""
import functools
import json
import re
import subprocess
import zipfile

import pytest
import requests

from tests.helpers import FFPROBE, probe

expect = pytest.importorskip("playwright.sync_api").expect

PASSWORD = "correct horse battery"
DONE_TIMEOUT = 120_000  # ms
# Records every state each job card passes through, so the test can tell what it showed on the way.
RECORDER = """
window.__seen = [];
const last = {};
new MutationObserver(() => {
  for (const li of document.querySelectorAll("#jobs > li")) {
    const bar = li.querySelector("progress");
    const box = li.querySelector(".job-progress");
    const rec = {
      name: li.querySelector(".job-name").textContent,
      status: li.querySelector(".badge").textContent,
      value: bar && !box.hidden && bar.hasAttribute("value") ? Number(bar.value) : null,
      bar: box.hidden ? "" : bar.getAttribute("aria-label") || "",
    };
    const key = JSON.stringify(rec);
    if (last[rec.name] !== key) { last[rec.name] = key; window.__seen.push(rec); }
  }
}).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""


def audio_stream(path):
    out = subprocess.run([FFPROBE, "-v", "error", "-select_streams", "a:0", "-show_entries",
                          "stream=codec_name,channels,sample_rate,bit_rate", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"][0]


def job_card(page, name):
    return page.locator("#jobs > li").filter(has=page.locator(".job-name", has_text=name))


def log_in(page, email, button="Log in"):
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name=button, exact=True).click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def step(action):
    """One thing the person does on the page; a failure inside says which (a note under the error)."""
    @functools.wraps(action)
    def run(*args, **kwargs):
        try:
            return action(*args, **kwargs)
        except Exception as exc:  # an assertion, or Playwright's timeout waiting for the page
            exc.add_note("browser step that failed: %s" % action.__name__.replace("_", " "))
            raise
    return run


def test_page_flow(stack, browser, media, screenshots):
    # long enough that the (normalised) conversion shows its progress on the way
    videos = [media.video("web-first.mp4", duration=120, size="160x120", rate=1),
              media.video("web-second.mkv", duration=120, size="160x120", rate=1)]
    names = [v.rsplit("/", 1)[-1] for v in videos]
    requested = []

    context = browser.new_context(base_url=stack.base, viewport={"width": 1280, "height": 900})
    context.on("request", lambda request: requested.append(request.url))
    context.add_init_script(RECORDER)
    page = context.new_page()
    page.goto("/")

    cookie = fail_to_log_in_then_register(page, context, screenshots)
    drop_two_videos(page, videos)
    set_options_and_convert(page)
    jobs = watch_progress_until_done(page, stack, names, cookie, screenshots)
    download_the_first(page, names, jobs)
    download_both_as_one_zip(page, names, screenshots)
    delete_the_second(page, stack, names, jobs, cookie)
    reload_and_see_the_list(page, names)
    look_at_it_narrow_and_dark(page, screenshots)
    tab_through_the_page(page)
    log_out_log_in_log_out(page, context, names, screenshots)
    register_another_user_who_sees_nothing(browser, stack.base, requested, names, jobs)
    context.close()
    nothing_left_the_gateways_origin(requested, stack.base)


@step
def fail_to_log_in_then_register(page, context, screenshots):
    """Logged out: the log-in form; a wrong log-in says why. Register logs in; the token is in an
    HttpOnly SameSite=Strict cookie the page cannot read. Returns the cookie."""
    screenshots(page, "login-1280")
    page.get_by_label("Email", exact=True).fill("alice@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#auth-error")).not_to_be_empty(timeout=15_000)
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(page.get_by_text("alice@example.com")).to_be_visible()
    cookie, = [ck for ck in context.cookies() if ck["name"] == "mp3svc_token"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert "mp3svc_token" not in page.evaluate("document.cookie")
    expect(page.locator("#jobs-empty")).to_be_visible()
    return cookie


@step
def drop_two_videos(page, videos):
    page.get_by_label("Video", exact=True).set_input_files(videos)
    expect(page.get_by_role("list", name="Chosen files").get_by_role("listitem")).to_have_count(2)


@step
def set_options_and_convert(page):
    page.get_by_text("Options", exact=True).click()
    page.get_by_label("Constant bitrate", exact=True).select_option("96")
    expect(page.get_by_label("Quality (VBR)", exact=True)).to_be_disabled()
    page.get_by_label("Sample rate", exact=True).select_option("22050")
    page.get_by_label("Channels", exact=True).select_option("1")
    page.get_by_label("Normalise loudness").check()
    page.get_by_label("Title", exact=True).fill("Browser test")
    page.get_by_role("button", name="Convert").click()


@step
def watch_progress_until_done(page, stack, names, cookie, screenshots):
    """Each card goes uploading (with an upload bar) -> queued -> converting (a rising bar) -> done,
    and the change is announced. Returns the jobs by file name, as GET /jobs lists them."""
    for name in names:
        expect(job_card(page, name).locator(".badge")).to_have_text("done", timeout=DONE_TIMEOUT)
    screenshots(page, "jobs-1280")
    seen = page.evaluate("window.__seen")
    for name in names:
        mine = [r for r in seen if r["name"] == name]
        statuses = [r["status"] for r in mine]
        assert statuses[-1] == "done", mine
        assert "uploading" in statuses, mine
        assert any(r["bar"].startswith("Upload of") and (r["value"] or 0) > 0 for r in mine), mine
        assert statuses.index("uploading") < statuses.index("queued") < statuses.index("done"), mine
        values = [r["value"] for r in mine if r["status"] == "converting" and r["value"] is not None]
        assert values == sorted(values) and all(0 <= v <= 1 for v in values), mine

    jobs = {j["filename"]: j for j in stack.http.get(stack.base + "/jobs", cookies={
        "mp3svc_token": cookie["value"]}).json()["jobs"]}
    assert sorted(jobs) == sorted(names)
    assert any(r["status"] == "converting" and r["value"] is not None for r in seen), seen
    expect(page.locator("#announcer")).not_to_be_empty()
    return jobs


@step
def download_the_first(page, names, jobs):
    first = job_card(page, names[0])
    with page.expect_download() as info:
        first.get_by_role("link", name="Download", exact=True).click()
    download = info.value
    assert download.suggested_filename == "web-first.mp3"
    mp3 = download.path()
    fmt, duration, codecs = probe(mp3)
    assert fmt == "mp3" and codecs == ["mp3"] and 115 < duration < 125, (fmt, duration, codecs)
    stream = audio_stream(mp3)
    assert stream["channels"] == 1 and stream["sample_rate"] == "22050", stream
    assert jobs[names[0]]["options"].get("bitrate") == 96, jobs[names[0]]["options"]


@step
def download_both_as_one_zip(page, names, screenshots):
    """Tick both finished jobs, "Download selected": one ZIP (POST /jobs/archive) with both MP3s."""
    button = page.get_by_role("button", name="Download selected", exact=True)
    expect(button).to_be_disabled()
    for name in names:
        page.get_by_role("checkbox", name="Select " + name, exact=True).check()
    expect(page.locator("#selected-count")).to_have_text("2 selected")
    screenshots(page, "jobs-selected-1280")
    with page.expect_download() as info:
        button.click()
    download = info.value
    named = download.suggested_filename
    assert re.fullmatch(r"mp3svc-\d{4}-\d{2}-\d{2}\.zip", named), named
    with zipfile.ZipFile(download.path()) as zipped:
        assert zipped.testzip() is None
        assert sorted(zipped.namelist()) == sorted(name.rsplit(".", 1)[0] + ".mp3" for name in names)
    expect(page.locator("#archive-error")).to_be_empty()
    expect(button).to_be_enabled()


@step
def delete_the_second(page, stack, names, jobs, cookie):
    """With the confirmation: cancel once, then confirm."""
    second = job_card(page, names[1])
    second.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(second).to_have_count(1)
    second.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Yes, delete").click()
    expect(second).to_have_count(0)
    expect(page.locator("#selected-count")).to_have_text("1 selected")  # the deleted one is let go
    gone = stack.http.get(stack.base + "/jobs/" + jobs[names[1]]["job_id"],
                          cookies={"mp3svc_token": cookie["value"]})
    assert gone.status_code == 404


@step
def reload_and_see_the_list(page, names):
    """A reload shows the list again, from GET /jobs."""
    page.reload()
    expect(job_card(page, names[0]).locator(".badge")).to_have_text("done")
    expect(job_card(page, names[0]).get_by_role("link", name="Download")).to_be_visible()
    expect(page.locator("#jobs > li")).to_have_count(1)
    expect(job_card(page, names[0]).locator(".job-meta")).to_contain_text("Deleted after")


@step
def look_at_it_narrow_and_dark(page, screenshots):
    """Screenshots: 1280 and 360 wide, light and dark."""
    screenshots(page, "app-1280")
    page.get_by_text("Options", exact=True).click()
    page.set_viewport_size({"width": 360, "height": 780})
    screenshots(page, "app-360-options")
    page.emulate_media(color_scheme="dark")
    screenshots(page, "app-360-dark")
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshots(page, "app-1280-dark")
    page.emulate_media(color_scheme="light")


@step
def tab_through_the_page(page):
    """Tab reaches Log out, the Video input, Convert, and the job's Download link."""
    page.keyboard.press("Tab")
    focused = set()
    for _ in range(40):
        focused.add(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
        page.keyboard.press("Tab")
    assert {"logout", "video", "convert", "Download"} <= focused, focused


@step
def log_out_log_in_log_out(page, context, names, screenshots):
    """Log out, log in again: the list is still there; log out again."""
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("Email", exact=True)).to_be_visible()
    assert not [ck for ck in context.cookies() if ck["name"] == "mp3svc_token"]
    page.set_viewport_size({"width": 360, "height": 780})
    screenshots(page, "login-360")
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, "alice@example.com")
    expect(job_card(page, names[0]).locator(".badge")).to_have_text("done")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("Email", exact=True)).to_be_visible()


@step
def register_another_user_who_sees_nothing(browser, base, requested, names, jobs):
    """A second user sees none of it, and cannot fetch alice's MP3."""
    other = browser.new_context(base_url=base)
    other.on("request", lambda request: requested.append(request.url))
    bob = other.new_page()
    bob.goto("/")
    bob.get_by_label("Email", exact=True).fill("bob@example.com")
    bob.get_by_label("Password", exact=True).fill(PASSWORD)
    bob.get_by_role("button", name="Register").click()
    expect(bob.get_by_role("button", name="Log out")).to_be_visible()
    expect(bob.locator("#jobs-empty")).to_be_visible()
    expect(bob.locator("#jobs > li")).to_have_count(0)
    assert bob.request.get("/download?fid=" + jobs[names[0]]["mp3_id"]).status == 404
    assert bob.request.get("/jobs/" + jobs[names[0]]["job_id"]).status == 404
    other.close()


@step
def nothing_left_the_gateways_origin(requested, base):
    assert requested and all(url.startswith(base + "/") for url in requested), \
        [u for u in requested if not u.startswith(base + "/")]


def test_cookie_session_and_csrf_over_http(stack):
    """POST/DELETE /session and the Origin rule, over plain HTTP."""
    base = stack.base
    stack.register("mallory-victim@example.com", PASSWORD)
    session = requests.Session()
    login = session.post(base + "/session", json={"email": "mallory-victim@example.com",
                                                  "password": PASSWORD})
    assert login.status_code == 200 and login.json()["email"] == "mallory-victim@example.com"
    assert "HttpOnly" in login.headers["Set-Cookie"] and "SameSite=Strict" in login.headers["Set-Cookie"]
    refused = session.post(base + "/upload", headers={"Origin": "http://evil.example"},
                           files={"file": ("x.mp4", b"\0" * 2048)})
    assert refused.status_code == 403 and refused.json()["error"] == "csrf", refused.text
    no_origin = session.post(base + "/upload", files={"file": ("x.mp4", b"\0" * 2048)})
    assert no_origin.status_code == 403 and no_origin.json()["error"] == "csrf"
    assert session.get(base + "/jobs", headers={"Origin": "http://evil.example"}).status_code == 200
    foreign_login = requests.post(base + "/session", headers={"Origin": "http://evil.example"},
                                  json={"email": "mallory-victim@example.com", "password": PASSWORD})
    assert foreign_login.status_code == 403 and foreign_login.json()["error"] == "csrf"
    out = session.delete(base + "/session", headers={"Origin": base})
    assert out.status_code == 204 and not session.cookies.get("mp3svc_token")
    assert session.get(base + "/jobs").status_code == 401


def test_static_files(stack):
    base = stack.base
    index = requests.get(base + "/")
    assert index.status_code == 200 and index.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in index.headers["Content-Security-Policy"]
    assert index.headers["Cache-Control"] == "no-cache" and index.headers.get("ETag")
    again = requests.get(base + "/", headers={"If-None-Match": index.headers["ETag"]})
    assert again.status_code == 304
    for path, kind in (("/web/app.js", "javascript"), ("/web/app.css", "text/css"),
                       ("/web/vendor/tus-js-client/tus.min.js", "javascript")):
        response = requests.get(base + path)
        assert response.status_code == 200 and kind in response.headers["Content-Type"], path
    for path in ("/web/../web.py", "/web/%2e%2e/web.py", "/web/..%2fweb.py", "/web/nothing.js", "/web/"):
        response = requests.get(base + path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
