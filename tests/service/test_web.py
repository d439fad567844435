"""The web page in a real headless browser (Debian's chromium driven by Playwright).

Skipped with a reason when /usr/bin/chromium is absent (``make browser`` installs it); the
test installs nothing and the browser talks only to the loopback server.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no /usr/bin/chromium (run `make browser` or apt-get install chromium) for the browser test",
)


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright (a dev dependency) is not installed"
    )
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        pg.goto(server.url + "/")
        yield pg
        context.close()
        browser.close()


def test_upload_see_result_and_download(page, server, svc, tmp_path):
    hazy = tmp_path / "hazy-street.png"
    hazy.write_bytes(svc.encode(svc.hazy_rgb(180, 270, seed=3), "PNG"))
    page.wait_for_selector("#status.ready")
    assert "tiny-dehaze" in page.inner_text("#status")

    page.set_input_files("#file-input", str(hazy))
    page.wait_for_selector("#result[data-state=done]")
    size = page.evaluate(
        "[document.getElementById('restored-img').naturalWidth,"
        " document.getElementById('restored-img').naturalHeight]"
    )
    assert size == [270, 180]
    assert page.is_visible("#hazy-img") and not page.is_visible("#error")
    assert "270 × 180" in page.inner_text("#info")

    page.fill("#split", "30")  # the comparison slider moves the divider
    page.dispatch_event("#split", "input")
    assert (
        page.evaluate(
            "getComputedStyle(document.getElementById('compare')).getPropertyValue('--split')"
        ).strip()
        == "30%"
    )

    shot = Path(os.environ.get("DEHAZE_SCREENSHOT_DIR", tmp_path)) / "web-restored.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0

    with page.expect_download() as info:
        page.click("#download")
    download = info.value
    assert download.suggested_filename == "hazy-street-dehazed.png"
    img = Image.open(io.BytesIO(Path(download.path()).read_bytes()))
    img.load()
    assert (img.format, img.size) == ("PNG", (270, 180))

    page.click("#view-side")  # side-by-side view shows both images
    assert page.is_visible("#hazy-side") and page.is_visible("#restored-side")
    page.click("#view-slider")


def test_errors_are_shown_in_plain_words(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a photo\n" * 20)
    page.set_input_files("#file-input", str(bad))
    page.wait_for_selector("#error:not([hidden])")
    assert "could not be read as a photo" in page.inner_text("#error-title")
    assert "not an image" in page.inner_text("#error-text").lower()

    big = tmp_path / "huge.jpg"
    big.write_bytes(b"\xff\xd8\xff" + bytes(1_200_000))  # over the 1 MB limit: refused in the page itself
    page.set_input_files("#file-input", str(big))
    page.wait_for_function("document.getElementById('error-title').textContent.includes('too large')")
    assert "1.2 MB" in page.inner_text("#error-text")
