"""Data Docs that work offline: the CSS/JS that Great Expectations' pages load from public CDNs, served
from copies beside the docs instead.

GX 1.x writes `<script src="https://...">` and `<link href="https://...">` tags for jQuery, Bootstrap,
bootstrap-table, Font Awesome and Vega into every page, so on a machine without internet the pages render
blank. Its package ships none of those files, so the exact versions its templates name are vendored in
`data_docs_vendor/` (sources and licences in its README). After GX builds a site, each page's CDN links are
rewritten to relative links into the site's own `static/vendor/` folder, where the files are copied: a
date's Data Docs folder stays self-contained, readable through the Marketing app or straight from disk.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

VENDOR_DIR = Path(__file__).with_name("data_docs_vendor")
SITE_VENDOR = Path("static", "vendor")  # inside the static/ folder GX copies into every site
# Every CDN URL in GX's page templates (great_expectations/render/view/templates) -> its vendored file.
CDN_FILES: dict[str, str] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper-1.12.9.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap-4.3.1.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap-4.3.1.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table-1.19.1.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table-1.19.1.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table-filter-control-1.19.1.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table-filter-control-1.19.0.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table-filter-control-1.19.0.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker-1.9.0.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker-1.9.0.min.js"
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "bootstrap-prefers-dark-1.1.0.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-6.6.0/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega-5.33.1.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite-5.23.0.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed-6.29.0.min.js",
}
# The navbar logo comes from GX's web-assets bucket; the same image is in the site's own static/images/.
LOGO_URL = re.compile(
    r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/([\w.-]+\.png)(\?[^\"]*)?"
)
# A link into the site's static/ folder. GX counts the "../" of some (the favicon of a validation page) one
# short, so every such link is re-pointed from the page's real depth.
SITE_STATIC = re.compile(r"\"(?:\./|(?:\.\./)+)static/")
# A script or link tag that loads a URL: a rewritten one also loses the CDN's SRI/CORS attributes.
REMOTE_TAG = re.compile(r"<(?:script|link)\b[^>]*?(?:src|href)=\"(https?://[^\"]+)\"[^>]*>")
_CDN_ONLY_ATTRIBUTES = re.compile(r"\s(?:integrity|crossorigin)=\"[^\"]*\"")


def localize_assets(site: Path) -> list[str]:
    """Copy the vendored files into `site`/static/vendor and point every page of the site at them.

    Returns the script and stylesheet URLs that no vendored file covers (a GX upgrade that names new
    ones); they are logged, and the pages that use them need the network until the files are vendored.
    """
    target = site / SITE_VENDOR
    shutil.copytree(VENDOR_DIR, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md"))
    unknown: set[str] = set()
    for page in site.rglob("*.html"):
        static = Path(os.path.relpath(site / "static", page.parent)).as_posix()
        html = page.read_text(encoding="utf-8")
        rewritten = REMOTE_TAG.sub(functools.partial(_local_tag, static=static), html)
        rewritten = LOGO_URL.sub(rf"{static}/images/\1", rewritten)
        rewritten = SITE_STATIC.sub(f'"{static}/', rewritten)
        unknown.update(match.group(1) for match in REMOTE_TAG.finditer(rewritten))
        if rewritten != html:
            page.write_text(rewritten, encoding="utf-8")
    if unknown:
        log.warning(
            "Data Docs in %s still load %d asset(s) from the network (add them to %s): %s",
            site,
            len(unknown),
            VENDOR_DIR,
            ", ".join(sorted(unknown)),
        )
    return sorted(unknown)


def _local_tag(tag: re.Match[str], static: str) -> str:
    url = tag.group(1)
    local = CDN_FILES.get(url)
    if local is None:
        return tag.group(0)
    text = _CDN_ONLY_ATTRIBUTES.sub("", tag.group(0))  # the CDN's hash and CORS mode; file:// pages refuse them
    return text.replace(f'"{url}"', f'"{static}/vendor/{local}"')
