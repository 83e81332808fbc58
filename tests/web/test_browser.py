"""Headless Chromium on the real Airflow UI: log in, open Marketing and a creative gallery, see images.

Needs Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver) and the
`selenium` package; skipped with a reason when the browser is not installed. Screenshots go to the
test's temporary folder and, when SCREENSHOT_DIR is set, there too (CI keeps them).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.conftest import PASSWORD, RUN_ID, USER, ApiServer

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 90  # generous: the 2 shared cores may be busy; every wait is still bounded

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("Debian chromium and chromium-driver are not installed", allow_module_level=True)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager would otherwise try to download one.
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _screenshot(driver: webdriver.Chrome, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    keep = os.environ.get("SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def _log_in(driver: webdriver.Chrome, server: ApiServer) -> None:
    driver.get(f"{server.url}/")
    wait = WebDriverWait(driver, WAIT_S)
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(USER)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: any(c["name"] == "_token" for c in d.get_cookies()))


def _open_plugin_frame(driver: webdriver.Chrome, url: str) -> WebElement:
    """Open a UI page that embeds a plugin view and return its iframe."""
    driver.get(url)
    return WebDriverWait(driver, WAIT_S).until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe")))


def test_logged_in_user_sees_marketing_page_with_images_and_metrics(
    api_server: ApiServer, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    try:
        _log_in(browser, api_server)
        # The Marketing entry of the navigation: the UI embeds the plugin page in an iframe.
        frame = _open_plugin_frame(browser, f"{api_server.url}/plugin/marketing")
        assert frame.get_attribute("src").endswith("/marketing/")
        browser.switch_to.frame(frame)
        wait = WebDriverWait(browser, WAIT_S)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.metrics")))
        assert "valid_ndcg@10" in browser.find_element(By.CSS_SELECTOR, "table.metrics").text
        images = browser.find_elements(By.CSS_SELECTOR, "img.creative")
        assert len(images) == 6
        for image in images:
            browser.execute_script("arguments[0].scrollIntoView()", image)
        wait.until(lambda d: all(d.execute_script("return arguments[0].naturalWidth", i) == 300 for i in images))
        curve = browser.find_element(By.CSS_SELECTOR, "img.curve")
        assert browser.execute_script("return arguments[0].naturalWidth", curve) == 240
        browser.switch_to.default_content()
    finally:
        shot = _screenshot(browser, tmp_path, "marketing-page")  # also on failure: what the person saw
    assert shot.stat().st_size > 10_000


def test_run_tab_shows_the_runs_business_date(api_server: ApiServer, browser: webdriver.Chrome, tmp_path: Path) -> None:
    try:
        _log_in(browser, api_server)
        frame = _open_plugin_frame(browser, f"{api_server.url}/dags/marketing_daily/runs/{RUN_ID}/plugin/marketing_run")
        assert frame.get_attribute("src").endswith(f"/marketing/runs/marketing_daily/{RUN_ID}")
        browser.switch_to.frame(frame)
        heading = WebDriverWait(browser, WAIT_S).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
        assert "business date 2024-03-31" in heading.text and RUN_ID in heading.text
        assert browser.find_elements(By.CSS_SELECTOR, "img.creative")
        browser.switch_to.default_content()
    finally:
        _screenshot(browser, tmp_path, "marketing-run-tab")


def test_anonymous_browser_is_refused(api_server: ApiServer, browser: webdriver.Chrome, tmp_path: Path) -> None:
    browser.get(f"{api_server.url}/marketing/")
    assert "Not authenticated" in browser.find_element(By.TAG_NAME, "body").text
    assert not browser.find_elements(By.CSS_SELECTOR, "img.creative")
    _screenshot(browser, tmp_path, "anonymous")
