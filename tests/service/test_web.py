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
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright (a dev dependency) is not installed"
    )
    with sync_api.sync_playwright() as p:  # one Playwright per module: its sync API allows no second
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def open_page(browser, url: str):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.goto(url + "/")
    return context, pg


@pytest.fixture(scope="module")
def pages(browser):
    """One page per server URL, opened on first use and closed with the module."""
    opened = {}

    def get(url: str):
        if url not in opened:
            opened[url] = open_page(browser, url)
        return opened[url][1]

    yield get
    for context, _ in opened.values():
        context.close()


@pytest.fixture(scope="module")
def page(pages, server):
    return pages(server.url)


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


@pytest.fixture(scope="module")
def asm_page(pages, asm_server):
    return pages(asm_server.url)


def test_strength_slider_changes_the_preview_without_a_new_upload(asm_page, asm_server, svc, tmp_path):
    page = asm_page
    hazy = tmp_path / "hazy-hills.png"
    hazy.write_bytes(svc.encode(svc.hazy_rgb(120, 180, seed=4), "PNG"))
    page.wait_for_selector("#status.ready")
    assert page.is_visible("#strength")
    requests = []
    page.on("request", lambda r: requests.append((r.method, r.url)) if "/dehaze" in r.url else None)
    page.set_input_files("#file-input", str(hazy))
    page.wait_for_selector("#result[data-state=done]")
    first_src = page.get_attribute("#restored-img", "src")
    first_pixels = page.evaluate(PIXELS)
    with asm_server.client() as c:
        runs = svc.metric(c.get("/metrics").text, "dehaze_network_runs_total")

    page.fill("#strength", "0.3")
    page.dispatch_event("#strength", "input")
    page.wait_for_function(f"document.getElementById('restored-img').src !== {first_src!r}")
    page.wait_for_selector("#result[data-state=done]")
    page.wait_for_function("document.getElementById('info').textContent.includes('re-rendered')")
    assert "0.30" in page.inner_text("#strength-field")
    assert page.evaluate(PIXELS) != first_pixels  # the preview changed
    posts = [u for m, u in requests if m == "POST"]
    gets = [u for m, u in requests if m == "GET" and "/dehaze/" in u]
    assert len(posts) == 1 and len(gets) == 1 and "strength=0.3" in gets[0]  # no new upload
    with asm_server.client() as c:  # and the network did not run again
        assert svc.metric(c.get("/metrics").text, "dehaze_network_runs_total") == runs


PIXELS = """(() => {
  const img = document.getElementById('restored-img');
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let s = 0;
  for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2];
  return s;
})()"""
