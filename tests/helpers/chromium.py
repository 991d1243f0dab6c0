"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright
(never `playwright install`), the viewports every page is looked at in, screenshots, and the
simulator's login form filled in as a member would."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="make test installs Debian's chromium"
)


def screenshot_folder(tmp_path: Path) -> Path:
    """`$IDENTITY_SCREENSHOTS` when set (to look at the pictures), else the test's own folder."""
    folder = Path(os.environ.get("IDENTITY_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shooter(tmp_path: Path, viewport: str) -> Callable[[Page, str], None]:
    """Screenshot a page as `NAME-VIEWPORT.png`, then check nothing is wider than the screen
    (a phone would scroll sideways)."""
    folder = screenshot_folder(tmp_path)

    def shot(page: Page, name: str) -> None:
        page.screenshot(path=str(folder / f"{name}-{viewport}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), name

    return shot


def sign_in_at_auth_centre(page: Page, account: str, password: str) -> None:
    """Fill in the simulator's login form (the tenant's auth centre) and submit it."""
    page.fill("input[name=username]", account)
    page.fill("input[name=password]", password)
    page.get_by_role("button", name=re.compile("Sign in")).click()


@contextmanager
def chromium_page(viewport: str) -> Iterator[Page]:
    """A new page of headless Chromium at one of `VIEWPORTS`, the browser closed after."""
    width, height = VIEWPORTS[viewport]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()
