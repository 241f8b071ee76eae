"""Headless Chromium for the dashboard's browser test and benchmark (Debian `chromium` and
`chromium-driver`, driven by selenium): one way to open the page, switch light/dark, and keep a
screenshot of the whole page. Not used by any node: selenium is a test and benchmark requirement.
"""

from __future__ import annotations

from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
# A laptop screen's viewport.
LAPTOP_SIZE = (1440, 900)


def open_chromium(profile_dir: Path, size: tuple[int, int] = LAPTOP_SIZE) -> webdriver.Chrome:
    """A headless Chromium with its own profile in `profile_dir`; the driver is Debian's, never one
    that selenium would download."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                f"--user-data-dir={profile_dir}", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    return driver


def set_color_scheme(driver: webdriver.Chrome, scheme: str) -> None:
    """Makes the page see `prefers-color-scheme: light` or `dark`, as the user's system setting would."""
    if scheme not in ("light", "dark"):
        raise ValueError(f"scheme must be light or dark, got {scheme!r}")
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-color-scheme", "value": scheme}]})


def screenshot_page(driver: webdriver.Chrome, path: Path, width: int = LAPTOP_SIZE[0]) -> Path:
    """A PNG of the whole page at `width` (the window grows to the page's height, then is put back)."""
    before = driver.get_window_size()
    # The window holds some browser chrome even headless: grow it by that much beyond the page.
    height = driver.execute_script(
        "return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight")
    driver.set_window_size(width, max(int(height), 300))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not driver.save_screenshot(str(path)):
            raise OSError(f"Chromium could not write {path}")
    finally:
        driver.set_window_size(before["width"], before["height"])
    return path
