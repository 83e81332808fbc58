"""Data Docs work offline: no page loads CSS/JS from a CDN, every file a page names exists beside it, and
Chromium with every network name unresolvable still renders the docs with their scripts running."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from pipelines.quality import GateReport, run_quality_gate
from pipelines.quality.docs_assets import CDN_FILES, REMOTE_TAG, VENDOR_DIR, localize_assets
from tests.browser import CHROMEDRIVER, CHROMIUM, OFFLINE, WAIT_S, chromium, screenshot
from tests.quality.store import CLEAN

# Every local file a page loads: scripts, stylesheets, images, favicons.
LOCAL_REFERENCE = re.compile(r"<(?:script|link|img)\b[^>]*?\b(?:src|href)=\"(?!https?://|#|data:)([^\"?#]+)")


@pytest.fixture(scope="module")
def report(store_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> GateReport:
    return run_quality_gate(store_engine, CLEAN, tmp_path_factory.mktemp("artifacts"))


def test_every_cdn_asset_in_the_installed_gx_templates_is_vendored() -> None:
    import great_expectations

    templates = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
    used = {m.group(1) for t in templates.glob("*.j2") for m in REMOTE_TAG.finditer(t.read_text())}
    assert used, "no CDN tag found in GX's templates: has their markup changed?"
    assert used <= CDN_FILES.keys(), f"not vendored: {sorted(used - CDN_FILES.keys())}"
    missing = [name for name in CDN_FILES.values() if not (VENDOR_DIR / name).is_file()]
    assert not missing


def test_localize_assets_rewrites_links_relative_to_each_page(tmp_path: Path) -> None:
    page = tmp_path / "validations" / "suite" / "run.html"
    page.parent.mkdir(parents=True)
    jquery = "https://code.jquery.com/jquery-3.7.1.min.js"
    page.write_text(
        f'<script src="{jquery}" integrity="sha384-x" crossorigin="anonymous"></script>'
        '<script src="https://example.org/new.js"></script><a href="https://greatexpectations.io">GX</a>'
    )
    assert localize_assets(tmp_path) == ["https://example.org/new.js"]  # reported, not silently kept
    html = page.read_text()
    assert '<script src="../../static/vendor/jquery-3.7.1.min.js"></script>' in html
    assert (tmp_path / "static" / "vendor" / "jquery-3.7.1.min.js").is_file()
    assert '<a href="https://greatexpectations.io">' in html  # plain links stay links


@pytest.mark.integration
def test_gate_data_docs_load_no_css_or_js_from_the_network(report: GateReport) -> None:
    site = report.data_docs.parent
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 3  # the index and one page per suite
    for page in pages:
        html = page.read_text()
        assert not REMOTE_TAG.findall(html), page
        assert "amazonaws.com" not in html, page
        local = LOCAL_REFERENCE.findall(html)
        assert any("static/vendor/jquery" in ref for ref in local), page
        missing = [ref for ref in local if not (page.parent / ref).resolve().is_file()]
        assert not missing, f"{page.relative_to(site)} names files that do not exist: {missing}"


@pytest.mark.integration
@pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="Debian chromium is not installed")
def test_data_docs_render_with_no_network(report: GateReport, tmp_path: Path) -> None:
    pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium(OFFLINE) as browser:
        try:
            browser.get(report.data_docs.as_uri())
            # bootstrap-table (a vendored script) fills the index's table of validation runs
            WebDriverWait(browser, WAIT_S).until(
                lambda d: d.execute_script("return document.querySelectorAll('table tbody tr[data-index]').length")
            )
            assert browser.execute_script("return typeof jQuery === 'function' && typeof vegaEmbed === 'function'")
            # Bootstrap's stylesheet applied: its navbar is a flex box (unstyled it would be a block)
            assert browser.execute_script("return getComputedStyle(document.querySelector('nav.navbar')).display") == (
                "flex"
            )
            logo = browser.execute_script("return document.querySelector('nav img').naturalWidth")
            assert logo > 0
        finally:
            screenshot(browser, tmp_path, "data-docs-offline")
