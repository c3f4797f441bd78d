"""Geometry probes for the layout journeys: the two viewports every layout test runs at, boxes,
and whether a control can really be hit where it is drawn (not hidden under something else)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playwright.async_api import Locator, Page

from tests.e2e.conftest import ContextFactory, Screenshots

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
VIEWPORTS = {"phone": PHONE, "desktop": DESKTOP}
VIEWPORT_NAMES = list(VIEWPORTS)  # what tests run at: both, every time


def viewport_options(name: str, **extra: Any) -> dict[str, Any]:
    """new_context() options for a viewport; the phone is a touch device, as a real one is."""
    options: dict[str, Any] = {"viewport": VIEWPORTS[name]}
    if name == "phone":
        options.update(is_mobile=True, has_touch=True, device_scale_factor=2)
    return {**options, **extra}


async def phone_or_desktop(new_context: ContextFactory, name: str, **extra: Any) -> Any:
    return await new_context(**viewport_options(name, **extra))


async def dark(page: Page, shot: Screenshots, label: str) -> None:
    """A screenshot of the same state in dark mode; back to light afterwards."""
    await page.emulate_media(color_scheme="dark")
    await shot(page, f"{label}-dark")
    await page.emulate_media(color_scheme="light")


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height

    def intersects(self, other: Box, tolerance: float = 0.5) -> bool:
        """True when the two boxes overlap by more than `tolerance` pixels both ways."""
        overlap_x = min(self.right, other.right) - max(self.x, other.x)
        overlap_y = min(self.bottom, other.bottom) - max(self.y, other.y)
        return overlap_x > tolerance and overlap_y > tolerance

    def inside(self, other: Box, tolerance: float = 0.5) -> bool:
        return (
            self.x >= other.x - tolerance
            and self.y >= other.y - tolerance
            and self.right <= other.right + tolerance
            and self.bottom <= other.bottom + tolerance
        )

    def __str__(self) -> str:
        return f"x {self.x:.1f}–{self.right:.1f}, y {self.y:.1f}–{self.bottom:.1f} ({self.width:.1f}×{self.height:.1f})"


async def box(locator: Locator) -> Box:
    """The element's box in viewport coordinates (getBoundingClientRect, as elementFromPoint uses)."""
    rect = await locator.evaluate("e => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }")
    return Box(*rect)


async def viewport_box(page: Page) -> Box:
    """The visible area without a scroll bar."""
    width, height = await page.evaluate("[document.documentElement.clientWidth, window.innerHeight]")
    return Box(0, 0, width, height)


async def expect_hittable(locator: Locator, what: str) -> None:
    """Scrolled into view, the element lies in the viewport, the element drawn at its centre (of its
    first line) is it or inside it, and Playwright's checks for a click pass (trial: no click)."""
    await locator.scroll_into_view_if_needed()
    page = locator.page
    shown = await box(locator)
    assert shown.width > 0 and shown.height > 0, f"{what} has no size: {shown}"
    assert shown.inside(await viewport_box(page)), f"{what} is outside the viewport: {shown}"
    hit = await locator.evaluate(
        """e => {
            const r = e.getClientRects()[0];  // a link wrapped over two lines: its first line
            const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
            return { ok: !!at && (at === e || e.contains(at)), at: at ? at.outerHTML.slice(0, 160) : null };
        }"""
    )
    assert hit["ok"], f"{what}: the element at its centre is {hit['at']}"
    await locator.click(trial=True, timeout=2_000)


async def horizontal_overflow(page: Page) -> list[str]:
    """A hidden sideways scroll: the document wider than the viewport, or a scroll container whose
    content is wider than its box. (Text cut short with an ellipsis on purpose is not one.)"""
    return await page.evaluate(  # type: ignore[no-any-return]
        """() => {
            const found = [];
            const root = document.documentElement;
            if (root.scrollWidth > root.clientWidth) found.push(`document: ${root.scrollWidth} > ${root.clientWidth}`);
            for (const e of document.querySelectorAll("body *")) {
                if (e.scrollWidth > e.clientWidth + 1 && ["auto", "scroll"].includes(getComputedStyle(e).overflowX)) {
                    found.push(`${e.tagName.toLowerCase()}.${e.className}: ${e.scrollWidth} > ${e.clientWidth}`);
                }
            }
            return found;
        }"""
    )


async def line_count(locator: Locator) -> float:
    """How many lines of text the element's content takes (its content height over its line height)."""
    return await locator.evaluate(  # type: ignore[no-any-return]
        """e => {
            const range = document.createRange();
            range.selectNodeContents(e);
            const rects = [...range.getClientRects()];
            const tops = new Set(rects.filter(r => r.width > 0).map(r => Math.round(r.top)));
            return tops.size;
        }"""
    )
