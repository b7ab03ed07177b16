"""The rulebook in a real browser (issue 21): Playwright drives the system's Chromium
(Debian package `chromium`; no browser is downloaded) over file:// pages, with no
server and no network. Skipped, with the reason, where Chromium or Playwright is
absent (tests/conftest.py repeats it at the end of the run). Screenshots of the home
page and one rule page are saved under tests/artifacts/ (git-ignored)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from cledecide.rulebook.records import write_review
from cledecide.rulebook.site import build

from conftest import RULES, ROOT
from test_signoff import DAY, edit

CHROMIUM = os.environ.get("CLEDECIDE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RULE = "antimalarial.quinacrine.add"
HOW = ("install Chromium (`apt-get install -y chromium`, as .ci/run does) and the test "
       "extras (`pip install -e '.[test]'`, which bring playwright)")

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the test extras bring it
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None,
                       reason=f"browser tests skipped: playwright is not installed; {HOW}"),
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason=f"browser tests skipped: no Chromium at {CHROMIUM}; {HOW}"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The shipped rules' site, and a copy whose approved rule was edited afterwards."""
    base = tmp_path_factory.mktemp("rulebook")
    build(base / "shipped")
    rules = base / "rules"
    shutil.copytree(RULES, rules)
    write_review(RULE, "approved", "Dr Jane Roe", "consultant dermatologist", "", rules, DAY)
    path = rules / "antimalarial.yaml"
    edit(path, "dose: 100 mg once daily}",
                                             "dose: 200 mg once daily}")
    build(base / "edited", rules)
    return base


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        # offline: any request that is not a file of the site fails the test
        outside: list[str] = []
        context.route(lambda url: not url.startswith("file://"),
                      lambda route: (outside.append(route.request.url), route.abort()))
        try:
            yield context
        finally:
            context.close()
        assert outside == [], outside


def url(site: Path, page: str) -> str:
    return (site / page).as_uri()


def test_home_page_shows_status_counts_and_a_clickable_ladder(site: Path, browser) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url(site / "shipped", "index.html"))
    assert "draft: not clinically approved" in page.locator(".brand .status").inner_text()
    assert page.locator('#review-summary td[data-kind="drug"][data-state="unreviewed"]')\
        .inner_text() == "15"
    page.locator("svg.ladder a[href='drugs/thalidomide.html']").click()
    page.wait_for_url("**/drugs/thalidomide.html")
    assert page.locator("h1").inner_text().startswith("thalidomide")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(url(site / "shipped", "index.html"))
    page.screenshot(path=str(ARTIFACTS / "rulebook-home.png"), full_page=True)
    print(f"screenshot: {ARTIFACTS / 'rulebook-home.png'}")
    assert errors == []


def test_search_finds_a_rule_by_a_drug_name(site: Path, browser) -> None:
    page = browser.new_page()
    page.goto(url(site / "shipped", "rules/index.html"))
    page.locator("#search").fill("quinacrine")
    results = page.locator("#search-results a")
    assert results.count() > 1
    hrefs = [results.nth(i).get_attribute("href") for i in range(results.count())]
    assert f"../rules/{RULE}.html" in hrefs
    page.locator(f"#search-results a[href='../rules/{RULE}.html']").click()
    page.wait_for_url(f"**/rules/{RULE}.html")
    # a citation finds it too (search over citations)
    page.locator("#search").fill("Kuhn S2k")
    assert page.locator("#search-results li").count() > 5


def test_rule_page_shows_its_scenarios_with_pass_marks(site: Path, browser) -> None:
    page = browser.new_page()
    page.goto(url(site / "shipped", f"rules/{RULE}.html"))
    marks = page.locator("table.scenarios td.mark")
    assert marks.count() > 0
    assert all(marks.nth(i).inner_text().strip() == "✓ pass" for i in range(marks.count()))
    assert page.locator("#worked-h").is_visible()
    page.screenshot(path=str(ARTIFACTS / "rulebook-rule.png"), full_page=True)
    print(f"screenshot: {ARTIFACTS / 'rulebook-rule.png'}")


def test_a_stale_approval_is_flagged_after_an_edit(site: Path, browser) -> None:
    page = browser.new_page()
    page.goto(url(site / "edited", f"rules/{RULE}.html"))
    alert = page.locator(".stale-alert")
    assert alert.is_visible() and "Stale" in alert.inner_text()
    assert "Dr Jane Roe" in alert.inner_text()
    page.goto(url(site / "edited", "index.html"))
    assert page.locator('#review-summary td[data-kind="rule"][data-state="stale"]')\
        .inner_text() == "1"


def test_keyboard_reaches_the_search_and_a_result(site: Path, browser) -> None:
    page = browser.new_page()
    page.goto(url(site / "shipped", "index.html"))
    for presses in range(1, 20):  # noqa: B007 (read after the loop)
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "search":
            break
    else:
        pytest.fail("Tab never reached the search box")
    assert presses <= 10  # skip link, home link, six section links, then the search
    page.keyboard.type("thalidomide")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.tagName") == "A"
    target = page.evaluate("document.activeElement.href")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == target and "thalidomide" in page.content()


def test_skip_link_and_print_layout(site: Path, browser) -> None:
    page = browser.new_page()
    page.goto(url(site / "shipped", f"rules/{RULE}.html"))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.emulate_media(media="print")
    assert not page.locator("#search").is_visible()  # print: no search, no navigation
    assert page.locator("table.scenarios").is_visible()
