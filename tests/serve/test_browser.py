"""The web page in a real headless Chromium (Debian's `chromium`, driven by Playwright; nothing downloaded).

Skips with a loud reason on a dev machine without chromium; under CI (`CI=true`) a missing browser fails.
Set FAKEREASONING_SCREENSHOT_DIR to keep the screenshots (they are always written to the test's tmp dir).
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest

from fakereasoning.schema import AUTHENTIC_ATTRIBUTES, FORGERY_ATTRIBUTES, LIMITS_NOTE

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def chromium_path(which=shutil.which, fallback: Path = Path("/usr/bin/chromium")) -> str:
    found = os.environ.get("CHROMIUM") or which("chromium") or which("chromium-browser")
    if found is None and fallback.exists():
        found = str(fallback)
    if found is None:
        message = "chromium is not installed (apt-get install chromium), so the page was NOT tested in a browser"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI: {message}")
        pytest.skip(f"!!! {message} !!! (CI installs it and runs this test)")
    return found


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI: playwright is not installed (pip install -c constraints.txt -e '.[test]')")
        pytest.skip("!!! playwright is not installed: the page was NOT tested in a browser !!!")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1200, "height": 900}, offline=False,
        )
        try:
            page = context.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            yield page, problems
        finally:
            context.close()


def screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("FAKEREASONING_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path


def upload(page, path: Path, mode: str = "full", ok: bool = True) -> None:
    page.check(f"input[name=mode][value={mode}]")
    page.set_input_files("#file", str(path))
    if ok:  # the result of THIS upload (the previous one is also in state "done")
        page.wait_for_selector(f"#meta:has-text('{path.name}')", timeout=20_000)
    # Selector waits, not wait_for_function: the page's CSP (no eval) applies to test scripts too.
    page.wait_for_selector("#result[data-state=done], #result[data-state=error]", timeout=20_000)


def test_page_shows_verdict_probability_and_marked_attributes(browser_page, live_server, png, tmp_path) -> None:
    page, problems = browser_page
    page.goto(live_server.url + "/")
    assert page.title().startswith("fakereasoning")
    assert page.get_attribute("#result", "data-state") == "idle"
    page.wait_for_selector("#footer:has-text('stub-detector')")

    fake_png = tmp_path / "reddish.png"
    fake_png.write_bytes(png((230, 30, 30), size=(96, 64)))
    upload(page, fake_png)
    assert page.get_attribute("#result", "data-state") == "done"
    assert page.inner_text("#verdict") == "FAKE"
    assert page.inner_text("#prob-value") == "90.2%"  # mean red 230/255 (the stub's p(fake)), noise ±0.1
    width = page.eval_on_selector("#bar-fill", "e => e.getBoundingClientRect().width / e.parentElement.getBoundingClientRect().width")
    assert width == pytest.approx(0.902, abs=0.01)
    assert "96x64" in page.inner_text("#caption")
    # what the verdict is worth: the calibrated words, and the limits note linking the model card
    assert page.inner_text("#verdict-sentence") == "p(fake) 0.90: very likely fake."
    assert LIMITS_NOTE in page.inner_text("#limits")
    assert page.get_attribute("#limits a", "href") == "model-card"
    items = page.query_selector_all("#attrs li")
    assert len(items) == 3
    for item in items:
        assert item.get_attribute("data-kind") == "forgery"
        assert item.query_selector(".attr-name").inner_text() in FORGERY_ATTRIBUTES
        assert item.query_selector(".chip").inner_text().lower() == "forgery"
    # Forgery entries are visibly marked apart: a red chip and border, not the authentic green.
    colour = page.eval_on_selector("#attrs li .chip", "e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(198, 40, 40)"
    screenshot(page, tmp_path, "page_fake.png")

    real_png = tmp_path / "bluish.png"
    real_png.write_bytes(png((15, 60, 210), size=(64, 64)))
    upload(page, real_png)
    assert page.inner_text("#verdict") == "REAL"
    kinds = {li.get_attribute("data-kind") for li in page.query_selector_all("#attrs li")}
    names = {e.inner_text() for e in page.query_selector_all("#attrs .attr-name")}
    assert kinds == {"authentic"} and names <= set(AUTHENTIC_ATTRIBUTES)
    assert page.eval_on_selector("#attrs li .chip", "e => getComputedStyle(e).backgroundColor") == "rgb(46, 125, 50)"
    screenshot(page, tmp_path, "page_real.png")

    upload(page, fake_png, mode="fast")
    assert page.inner_text("#verdict") == "FAKE"
    assert page.query_selector_all("#attrs li") == []
    assert "fast mode" in page.inner_text("#no-attrs")

    # Dropping a file on the drop zone works like picking one.
    page.check("input[name=mode][value=full]")
    dropped = base64.b64encode(png((240, 20, 20), size=(50, 50))).decode()
    transfer = page.evaluate_handle(
        """(b64) => {
            const bin = atob(b64), bytes = new Uint8Array(bin.length);
            for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
            return dt;
        }""",
        dropped,
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("#meta:has-text('dropped.png')", timeout=20_000)
    assert page.inner_text("#verdict") == "FAKE" and len(page.query_selector_all("#attrs li.forgery")) == 3

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    assert problems == []  # no CSP violation, script error or failed request so far
    upload(page, broken, ok=False)
    assert page.get_attribute("#result", "data-state") == "error"
    assert "broken.png" in page.inner_text("#status") and "Error" in page.inner_text("#status")
    # the rejected upload cleared the previous verdict and preview
    assert not page.is_visible("#verdict") and not page.is_visible("#preview")
    screenshot(page, tmp_path, "page_error.png")

    # a file dropped while one is analysing is refused visibly, not dropped silently
    page.evaluate(
        """(b64) => {
            const bin = atob(b64), bytes = new Uint8Array(bin.length);
            for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
            const drop = document.getElementById("drop");
            for (const name of ["first.png", "second.png"]) {
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], name, {type: "image/png"}));
                drop.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
            }
        }""",
        dropped,
    )
    assert "second.png was not analysed: still analysing first.png" in page.inner_text("#notice")
    page.wait_for_selector("#meta:has-text('first.png')", timeout=20_000)

    # The one console message is the browser's note about the 400 itself.
    assert len(problems) == 1 and "400" in problems[0]


def test_a_missing_chromium_fails_in_ci_and_skips_loudly_elsewhere(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI: chromium is not installed"):
        chromium_path(which=lambda name: None, fallback=tmp_path / "no-chromium")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="NOT tested in a browser"):
        chromium_path(which=lambda name: None, fallback=tmp_path / "no-chromium")
