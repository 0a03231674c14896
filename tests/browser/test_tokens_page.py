"""The web page's API tokens in a real browser (Debian's chromium via Playwright) against all four
services: create one (name, scopes, expiry), see its secret once and copy it, use it from a script,
see when it was last used, revoke it (and the script's next request is refused)."""
import pytest
import requests

from tests.browser.test_web_page import log_in

expect = pytest.importorskip("playwright.sync_api").expect


def test_create_see_once_use_revoke(stack, browser, screenshots):
    context = browser.new_context(base_url=stack.base, viewport={"width": 1100, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.base)
    page = context.new_page()
    try:
        page.goto("/")
        log_in(page, "tokens-page@example.com", button="Register")
        section = page.locator("#api-tokens")
        section.locator("summary").click()
        expect(page.get_by_text("No API tokens yet.")).to_be_visible()

        # create: nothing chosen for the name first
        page.get_by_role("button", name="Create token").click()
        expect(page.get_by_role("alert").filter(has_text="Give the token a name")).to_be_visible()
        page.get_by_label("Token name").fill("nightly backup")
        expect(page.get_by_role("checkbox", name="Read jobs")).to_be_checked()
        page.get_by_role("checkbox", name="Write jobs").check()
        page.get_by_label("Expires after (days)").fill("30")
        page.get_by_role("button", name="Create token").click()
        secret_box = page.get_by_role("textbox", name="New token")
        expect(secret_box).to_be_visible()
        secret = secret_box.input_value()
        assert secret.startswith("mp3_"), secret
        expect(page.locator("#token-created").get_by_text("shown only this once")).to_be_visible()
        page.get_by_role("button", name="Copy").click()
        expect(page.get_by_role("status").filter(has_text="Copied")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == secret
        card = page.locator("#tokens > li").filter(has_text="nightly backup")
        expect(card).to_contain_text("jobs:read, jobs:write")
        expect(card).to_contain_text("never used")
        screenshots(page, "tokens-1-created")

        # a script uses it
        api = {"Authorization": "Bearer " + secret}
        assert requests.get(stack.url("/jobs"), headers=api, timeout=30).status_code == 200

        # shown once: after a reload the page has no copy of it, and the list says when it was used
        page.reload()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        section.locator("summary").click()
        expect(card).to_contain_text("last used")
        expect(page.get_by_role("textbox", name="New token")).to_be_hidden()
        assert secret not in page.content()
        screenshots(page, "tokens-2-listed")

        # revoke: asked first, then gone at once
        card.get_by_role("button", name="Revoke").click()
        page.get_by_role("button", name="Cancel").click()
        expect(card).to_be_visible()
        page.get_by_role("button", name="Revoke nightly backup").click()
        page.get_by_role("button", name="Yes, revoke").click()
        expect(card).to_have_count(0)
        expect(page.get_by_text("No API tokens yet.")).to_be_visible()
        refused = requests.get(stack.url("/jobs"), headers=api, timeout=30)
        assert (refused.status_code, refused.json()["error"]) == (401, "invalid_token")
    finally:
        context.close()
