"""axe-core in a real page: run it, keep its violations, count them by impact.

axe is added to the page as a script tag, which the site's Content-Security-Policy refuses: a
context that runs it is opened with bypass_csp=True (the pages' compliance with the policy is
proven in test_security_headers_ui.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page

from tests.services import PROJECT_ROOT

AXE_SCRIPT = PROJECT_ROOT / "tests" / "interop" / "node_modules" / "axe-core" / "axe.min.js"
IMPACTS = ("critical", "serious", "moderate", "minor")


async def with_axe(context: BrowserContext) -> None:
    """axe in every page the context opens, from its start: cheaper than a script tag per page
    when a test visits many."""
    await context.add_init_script(path=str(_axe_script()))


def _axe_script() -> Path:
    if not AXE_SCRIPT.exists():
        pytest.fail(f"{AXE_SCRIPT} is missing: run `npm ci --prefix tests/interop`", pytrace=False)
    return AXE_SCRIPT


async def axe_violations(page: Page, context: str) -> list[dict[str, Any]]:
    """axe's violations in `context` ("document" or a CSS selector) of the page as it is now."""
    if not await page.evaluate("typeof window.axe === 'object'"):  # not there already (with_axe)
        await page.add_script_tag(path=str(_axe_script()))
    return await page.evaluate(  # type: ignore[no-any-return]
        """async (context) => {
            const target = context === "document" ? document : context;
            const results = await axe.run(target, { resultTypes: ["violations"] });
            return results.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5),
            }));
        }""",
        context,
    )


def serious(violations: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """The critical and serious ones; the others are printed, for the record."""
    for violation in violations:
        if violation["impact"] not in ("serious", "critical"):
            details = f"{violation['id']} - {violation['help']} {violation['nodes']}"
            print(f"\naxe ({where}), {violation['impact']}: {details}")
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def by_impact(violations: list[dict[str, Any]]) -> dict[str, int]:
    """How many rules each impact broke (axe counts a rule once, whatever the number of nodes)."""
    return {impact: sum(1 for v in violations if v["impact"] == impact) for impact in IMPACTS}


def describe(problems: list[dict[str, Any]]) -> str:
    return "\n".join(f"  {v['impact']}: {v['id']} - {v['help']} {v['nodes']}" for v in problems)
