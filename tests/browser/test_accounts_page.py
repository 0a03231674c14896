"""The web page's account flows in a real browser (Debian's chromium via Playwright) against all
four services with EMAIL_VERIFICATION on and a real SMTP sink: the links are read from the mail."""
import re

import pytest
import requests

from services.auth.service import AuthService
from services.converter.service import ConverterService
from services.gateway.service import GatewayService
from services.notification.service import NotificationService
from tests.helpers import MailSink, wait_until
from tests.integration.conftest import Api

expect = pytest.importorskip("playwright.sync_api").expect

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"
LINK_RE = re.compile(r"https?://\S+/(?:verify|reset)\?token=[A-Za-z0-9_-]+")


@pytest.fixture
def verifying(runner_factory, service_config, mail_sink):
    """The four services with EMAIL_VERIFICATION on (the product default)."""
    service_config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=mail_sink.port, EMAIL_VERIFICATION=True)
    service_config["PUBLIC_URL"] = "http://" + service_config["WEB_SERVER_ADDRESS"]
    runner = runner_factory(service_config, GatewayService, AuthService, ConverterService,
                            NotificationService)
    runner.start()
    api = Api(service_config["PUBLIC_URL"])
    wait_until(lambda: api.http.get(api.url("/healthz")).status_code == 200, 30,
               message="gateway healthy")
    api.mail = mail_sink
    yield api
    api.http.close()


@pytest.fixture
def page(verifying, browser):
    context = browser.new_context(base_url=verifying.base, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto("/")
    expect(page.get_by_role("button", name="Log in", exact=True)).to_be_visible()
    yield page
    context.close()


def link_from_mail(sink, email, count, subject):
    def found():
        mails = [m for m in sink.messages() if m["To"] == email and subject in m["Subject"]]
        return mails if len(mails) >= count else None
    mail = wait_until(found, 60, message="%s mail to %s" % (subject, email))[-1]
    return LINK_RE.search(MailSink.text_of(mail)).group(0)


def fill_login(page, email, password):
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)


def log_in(page, email, password):
    fill_login(page, email, password)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def register_and_confirm(page, verifying, email, screenshots=None):
    fill_login(page, email, PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("status").filter(has_text="we sent a link")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_hidden()
    if screenshots:
        screenshots(page, "accounts-1-registered")
    link = link_from_mail(verifying.mail, email, 1, "Confirm your email address")
    page.goto(link)
    expect(page.get_by_text("is confirmed. Log in")).to_be_visible()
    assert page.url.endswith("/") and "token" not in page.url  # the token left the address bar
    if screenshots:
        screenshots(page, "accounts-2-confirmed")


def test_register_confirm_from_the_mail_then_log_in(page, verifying, screenshots):
    email = "page-new@example.com"
    register_and_confirm(page, verifying, email, screenshots)
    # the page filled the address in; the password is asked for
    expect(page.get_by_label("Email", exact=True)).to_have_value(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    # the link works once
    link = link_from_mail(verifying.mail, email, 1, "Confirm your email address")
    page.get_by_role("button", name="Log out").click()
    page.goto(link)
    expect(page.get_by_role("alert")).to_contain_text("not valid")


def test_logging_in_before_confirming_says_so_and_sends_again(page, verifying):
    email = "page-early@example.com"
    fill_login(page, email, PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("status").filter(has_text="we sent a link")).to_be_visible()
    fill_login(page, email, PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Confirm %s first" % email)).to_be_visible()
    page.get_by_role("button", name="Send the link again").click()
    expect(page.get_by_role("status").filter(has_text="new link")).to_be_visible()
    link_from_mail(verifying.mail, email, 2, "Confirm your email address")


def test_forgot_password_then_reset_from_the_mail(page, verifying, screenshots):
    email = "page-forgot@example.com"
    register_and_confirm(page, verifying, email)
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_role("button", name="Forgot password?").click()
    expect(page.get_by_role("status").filter(has_text="we sent it a link")).to_be_visible()
    link = link_from_mail(verifying.mail, email, 1, "Choose a new mp3svc password")
    page.goto(link)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.get_by_label("New password", exact=True).fill("password1")  # a common one
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("alert").filter(has_text="commonly used")).to_be_visible()
    screenshots(page, "accounts-3-reset-weak")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_text("Your password is changed")).to_be_visible()
    # the old password no longer works, the new one does
    fill_login(page, email, PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("wrong")
    log_in(page, email, NEW_PASSWORD)


def test_change_password_and_delete_account(page, verifying, media, screenshots):
    email = "page-owner@example.com"
    register_and_confirm(page, verifying, email)
    log_in(page, email, PASSWORD)
    other = requests.post(verifying.base + "/login", auth=(email, PASSWORD), timeout=30).json()["token"]

    page.get_by_text("Account", exact=True).click()
    page.get_by_label("Current password", exact=True).fill("not my password")
    page.get_by_label("Your new password", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-error")).to_contain_text("wrong")
    page.get_by_label("Current password", exact=True).fill(PASSWORD)
    page.get_by_label("Your new password", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Password changed.")).to_be_visible()
    screenshots(page, "accounts-4-password-changed")
    # the other device is logged out; this page carries on with its new cookie
    assert requests.get(verifying.base + "/jobs", headers={"Authorization": "Bearer " + other},
                        timeout=30).status_code == 401
    page.get_by_label("Video", exact=True).set_input_files([media.video("mine.mp4", duration=1.0)])
    page.get_by_role("button", name="Convert").click()
    expect(page.locator("#jobs > li")).to_have_count(1)
    new_token = requests.post(verifying.base + "/login", auth=(email, NEW_PASSWORD),
                              timeout=30).json()["token"]
    wait_until(lambda: requests.get(verifying.base + "/jobs", timeout=30, headers={
        "Authorization": "Bearer " + new_token}).json()["jobs"], 60, message="the job listed")

    page.get_by_label("Password to confirm", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Delete account").click()
    page.get_by_role("dialog").get_by_role("button", name="Keep my account").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    page.get_by_role("button", name="Delete account").click()
    page.get_by_role("dialog").get_by_role("button", name="Yes, delete my account").click()
    expect(page.get_by_text("Your account and all its conversions are deleted.")).to_be_visible()
    expect(page.get_by_role("button", name="Log in", exact=True)).to_be_visible()
    assert requests.get(verifying.base + "/jobs", headers={"Authorization": "Bearer " + new_token},
                        timeout=30).status_code == 401
    assert requests.post(verifying.base + "/login", auth=(email, NEW_PASSWORD),
                         timeout=30).status_code == 401
