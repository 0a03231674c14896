"""Browser tests: Debian's chromium driven by Playwright for Python against the in-process stack.

scripts/setup-browser.sh installs both; nothing here downloads a browser. Screenshots go to
var/screenshots/ (outside git) or $SCREENSHOT_DIR.
"""
import os

import pytest

from tests.integration.conftest import stack  # noqa: F401  (the fixture: all four services)

sync_api = pytest.importorskip("playwright.sync_api", reason="run scripts/setup-browser.sh")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = os.environ.get("BROWSER_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.environ.get("SCREENSHOT_DIR") or os.path.join(ROOT, "var", "screenshots")


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("%s is missing: run scripts/setup-browser.sh" % CHROMIUM)
    manager = sync_api.sync_playwright()
    playwright = manager.start()
    # Local Network Access: a page the test serves through request interception has no address,
    # so Chromium would refuse its requests to 127.0.0.1 before they reach the gateway.
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests"])
    yield browser
    browser.close()
    # Playwright's stop() never returns under eventlet's monkey-patching (it waits for the driver
    # through asyncio's child watcher): close the driver's pipe and end it ourselves instead.
    transport = manager._client._transport
    transport.request_stop()
    transport._proc.kill()


@pytest.fixture
def screenshots():
    os.makedirs(SCREENSHOTS, exist_ok=True)

    def shoot(page, name, full_page=True):
        path = os.path.join(SCREENSHOTS, name + ".png")
        page.screenshot(path=path, full_page=full_page)
        return path
    return shoot
