"""In a real browser: pages and the admin run under the strict Content-Security-Policy without a
single violation, and the pages fit a 390 px wide phone screen."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.test_sign_in import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Runs before any page script (Playwright injects it outside the page's CSP) and records every
# violation the browser reports; console errors are collected as well.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


def watch(page: Any) -> list[str]:
    errors: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def visit(page: Any, url: str, errors: list[str]) -> list[str]:
    response = page.goto(url)
    assert response.status == 200, url
    page.wait_for_load_state("load")
    page.wait_for_timeout(200)  # htmx and the page scripts have run
    found = [f"{url}: {v}" for v in page.evaluate("window.__cspViolations")]
    found += [f"{url}: {e}" for e in errors]
    errors.clear()
    return found


def test_it_runs_pages_and_the_admin_without_policy_violations(world: Any, live_server: Any, page: Any) -> None:
    errors = watch(page)
    base = live_server.url
    sign_in(page, base, "manager")
    page.wait_for_url(f"{base}/o/demo-lab/")
    project, label = world.demo.project, world.demo.label
    urls = [
        "/o/demo-lab/",
        f"/o/demo-lab/projects/{project.pk}/",
        f"/o/demo-lab/projects/{project.pk}/labels/",
        f"/o/demo-lab/projects/{project.pk}/tasks/",
        "/admin/",
        "/admin/annotation/project/",
        f"/admin/annotation/project/{project.pk}/change/",
        "/admin/annotation/project/add/",
        "/admin/annotation/label/",
        f"/admin/annotation/label/{label.pk}/change/",
        "/admin/annotation/mediaitem/",
        "/admin/platform_core/membership/",
    ]
    violations = [v for url in urls for v in visit(page, base + url, errors)]
    assert violations == [], "\n".join(violations)


def test_it_catches_a_violation(world: Any, live_server: Any, page: Any) -> None:
    # The recorder itself must be able to fail: an inline style set through markup is blocked.
    errors = watch(page)
    page.goto(live_server.url + "/accounts/login/")
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p style=\"color: red\">x</p>')")
    page.wait_for_timeout(200)
    assert page.evaluate("window.__cspViolations") or errors


@pytest.mark.parametrize("who", ["manager", "annotator"])
def test_it_fits_a_390_px_wide_screen(world: Any, live_server: Any, page: Any, who: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    base = live_server.url
    sign_in(page, base, who)
    page.wait_for_url(f"{base}/o/demo-lab/")
    for url in ("/o/demo-lab/", f"/o/demo-lab/projects/{world.demo.project.pk}/", "/o/demo-lab/tasks/"):
        page.goto(base + url)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{url} is {width} px wide"
        header = page.locator("header.topbar").bounding_box()
        assert header["width"] <= 390
        # Everything in the header is on the screen and can be reached.
        for item in page.locator("header.topbar a, header.topbar button, header.topbar summary").all():
            box = item.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, item.inner_text()
