"""Headless Chromium on the real Airflow UI: log in, open Marketing and a creative gallery, see images.

Skipped with a reason when Debian's chromium is not installed (tests.browser).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import WAIT_S, chromium, require_chromium, screenshot
from tests.web.conftest import PASSWORD, RUN_ID, USER, ApiServer

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

require_chromium()
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


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
        tables = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "table.metrics")]
        assert any("valid_ndcg@10" in t and "parent" in t for t in tables)
        images = browser.find_elements(By.CSS_SELECTOR, "img.creative")
        assert len(images) == 12
        _load_images(browser, images)
        cards = _check_gallery_layout(browser)
        assert sorted({tuple(c["natural"]) for c in cards}) == [(300, 250), (728, 90)]
        # Room enough here: every banner shows at its own size, none shrunk.
        assert all(abs(c["image"][2] - c["image"][0] - c["natural"][0]) < 1 for c in cards), cards
        curve = browser.find_element(By.CSS_SELECTOR, "img.curve")
        assert browser.execute_script("return arguments[0].naturalWidth", curve) == 240
        browser.execute_script("arguments[0].scrollIntoView()", images[0])  # the screenshot shows the gallery
        browser.switch_to.default_content()
    finally:
        shot = screenshot(browser, tmp_path, "marketing-page")  # also on failure: what the person saw
    assert shot.stat().st_size > 10_000


def test_leaderboard_banners_scale_down_inside_their_cards_on_a_narrow_page(
    api_server: ApiServer, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    try:
        _log_in(browser, api_server)
        browser.set_window_size(560, 1000)
        browser.get(f"{api_server.url}/marketing/dates/2024-03-31")  # the page alone, as a phone would show it
        images = WebDriverWait(browser, WAIT_S).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "img.creative") or False
        )
        _load_images(browser, images)
        cards = _check_gallery_layout(browser)
        wide = [c for c in cards if c["natural"] == [728, 90]]
        assert len(wide) == 6
        for card in wide:  # narrower than the banner: scaled to the card's width, never past it
            shown = card["image"][2] - card["image"][0]
            assert shown < 728 and card["card"][2] <= browser.execute_script("return window.innerWidth")
        wide_card = browser.find_element(By.CSS_SELECTOR, ".gallery img[width='728']")
        browser.execute_script("arguments[0].scrollIntoView()", wide_card)
    finally:
        screenshot(browser, tmp_path, "marketing-page-narrow")


# Each creative card's box, its banner's box and natural size, and its review buttons' boxes, in CSS pixels.
CARD_BOXES_JS = """
const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
return [...document.querySelectorAll('.gallery > figure')].map((card) => {
  const img = card.querySelector('img.creative');
  return {card: box(card), image: box(img), natural: [img.naturalWidth, img.naturalHeight],
          buttons: [...card.querySelectorAll('button')].map(box),
          overflows: card.scrollWidth > card.clientWidth};
});
"""
EPS = 0.5  # sub-pixel rounding of layout boxes


def _load_images(driver: webdriver.Chrome, images: list[WebElement]) -> None:
    """Scroll each lazily loaded banner into view and wait until every one has decoded."""
    for image in images:
        driver.execute_script("arguments[0].scrollIntoView()", image)
    WebDriverWait(driver, WAIT_S).until(
        lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i) for i in images)
    )


def _inside(inner: list[float], outer: list[float]) -> bool:
    return (
        inner[0] >= outer[0] - EPS
        and inner[1] >= outer[1] - EPS
        and inner[2] <= outer[2] + EPS
        and inner[3] <= outer[3] + EPS
    )


def _overlap(a: list[float], b: list[float]) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > EPS and min(a[3], b[3]) - max(a[1], b[1]) > EPS


def _check_gallery_layout(driver: webdriver.Chrome) -> list[dict]:
    """Every banner and button lies inside its own card, undistorted; no two cards overlap."""
    cards = driver.execute_script(CARD_BOXES_JS)
    assert cards
    for n, card in enumerate(cards):
        assert _inside(card["image"], card["card"]), f"card {n}: banner {card['image']} spills out of {card['card']}"
        for button in card["buttons"]:
            assert _inside(button, card["card"]), f"card {n}: button {button} lies outside {card['card']}"
        assert not card["overflows"], f"card {n}: its content is wider than the card"
        width, height = card["image"][2] - card["image"][0], card["image"][3] - card["image"][1]
        natural_w, natural_h = card["natural"]
        assert abs(width / height - natural_w / natural_h) < 0.03 * natural_w / natural_h, f"card {n} is distorted"
    for n, card in enumerate(cards):
        for m in range(n + 1, len(cards)):
            assert not _overlap(card["card"], cards[m]["card"]), f"cards {n} and {m} overlap"
    return cards


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
        screenshot(browser, tmp_path, "marketing-run-tab")


def test_anonymous_browser_is_refused(api_server: ApiServer, browser: webdriver.Chrome, tmp_path: Path) -> None:
    browser.get(f"{api_server.url}/marketing/")
    assert "Not authenticated" in browser.find_element(By.TAG_NAME, "body").text
    assert not browser.find_elements(By.CSS_SELECTOR, "img.creative")
    screenshot(browser, tmp_path, "anonymous")
