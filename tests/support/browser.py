"""Driving the web page with Playwright and Debian's chromium: shared by the browser tests and
bench/screenshots.py."""

from __future__ import annotations

from playwright.sync_api import Page, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def draw(page: Page, strokes: list[list[tuple[int, int]]]) -> None:
    """Clear the pad and draw `strokes` (canvas coordinates) with the mouse, as a person would."""
    page.click("#clear")
    box = page.locator("#pad").bounding_box()
    assert box is not None
    for points in strokes:
        page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=15)
        page.mouse.up()


def press(page: Page, button: str) -> str:
    """Click `button` and return the verdict line it produces (emptied first, so an old one never counts)."""
    page.locator("#verdict").evaluate("v => { v.textContent = ''; v.className = ''; }")
    page.click(button)
    verdict = page.locator("#verdict")
    expect(verdict).not_to_be_empty()
    return verdict.inner_text()
