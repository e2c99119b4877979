"""The studio's "specify, then generate" panel and the slider kinds in real Chromium (Playwright): the page asks for
bright, not warm faces and every face shown is bright and not warm, judged from the pixels the browser decoded (the
test classifier of test_studio_specify_api is a known function of the pixels); sliders are listed per kind; a
conditional slider is made from the stored boundary normals and moves the face. Screenshot:
test-artifacts/studio-specify.png."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from serving_helpers import running_server
from test_studio_api import visible_tiny_model
from test_studio_browser import browser, browser_pixels, open_studio, page, select_face, wait_js  # noqa: F401
from test_studio_specify_api import expected_flags, specify_model

pytestmark = [pytest.mark.browser, pytest.mark.stack_neutral]  # make test-current skips it


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_run):
    root = tmp_path_factory.mktemp("studio_browser_specify")
    model = specify_model(root, visible_tiny_model(tmp_path_factory, tiny_run))
    with running_server(model_config_file=model.config) as server:
        yield SimpleNamespace(server=server, **model.__dict__)


@pytest.fixture(scope="module")
def studio(served):
    from serving.studio.config import StudioConfig
    from serving.studio.server import StudioServer

    with StudioServer(StudioConfig(server=served.server.grpc_target, port=0, model_base_path=served.base)) as s:
        yield s


def test_specify_shows_faces_that_match_and_they_can_be_selected(page, studio, served, artifacts_dir):  # noqa: F811
    open_studio(page, studio.url)
    page.wait_for_selector("[data-testid=constraint][data-attribute=Bright]", state="attached")
    page.select_option("[data-testid=constraint][data-attribute=Bright]", "true")
    page.select_option("[data-testid=constraint][data-attribute=Warm]", "false")
    page.select_option("[data-testid=specify-n]", "4")
    page.click("[data-testid=specify-run]")
    wait_js(page, "document.querySelectorAll('#specify-faces [data-testid=face] img').length === 4",
            what="four specified faces")
    faces = browser_pixels(page, "#specify-faces [data-testid=face] img")
    for picture in faces:
        flags = expected_flags(picture, served.medians)
        assert flags["Bright"] and not flags["Warm"], flags
    rate = page.inner_text("[data-testid=specify-rate]")
    assert rate.startswith("4 of 4 found") and "sampled faces met every constraint" in rate
    page.locator("#specify-faces [data-testid=face]").first.click()
    assert page.inner_text("[data-testid=face-caption]").startswith("seed ")
    page.locator("#specify-section").screenshot(path=os.path.join(artifacts_dir, "studio-specify.png"))

    # Bad input is explained on the panel: an impossible wish.
    page.select_option("[data-testid=constraint][data-attribute=Warm]", "")
    page.select_option("[data-testid=constraint][data-attribute=Never]", "true")
    page.click("[data-testid=specify-run]")
    page.wait_for_selector("[data-testid=error-specify]:not([hidden])")
    assert "Never=true could not be met" in page.inner_text("[data-testid=error-specify]")


def test_sliders_are_listed_per_kind_and_a_conditional_slider_moves_the_face(page, studio):  # noqa: F811
    open_studio(page, studio.url)
    select_face(page, 0)
    page.wait_for_selector("[data-testid=slider][data-direction='SeFa 1']", state="attached")
    kinds = page.eval_on_selector_all("#sliders h4.kind", "hs => hs.map(h => h.dataset.kind)")
    assert kinds == ["mean_difference", "boundary", "sefa"]
    page.select_option("[data-testid=conditional-attribute]", "Bright")
    page.click("[data-testid=conditional-make]")
    name = "Bright · conditional | Warm fixed"  # Warm is reliable (checked by default), Never is not
    slider = f"[data-testid=slider][data-direction='{name}']"
    page.wait_for_selector(slider, state="attached")
    old = page.get_attribute("[data-testid=face-big]", "src")
    page.eval_on_selector(slider, "e => { e.value = 2; e.dispatchEvent(new Event('input')); }")
    wait_js(page, "document.getElementById('face-big').src !== arg", old, what="the face to move")
    assert name in page.inner_text("[data-testid=face-caption]")


def test_each_slider_shows_its_judge_badge_and_a_click_moves_it_to_the_suggested_step(page, studio, served,  # noqa: F811
                                                                                      artifacts_dir):
    open_studio(page, studio.url)
    select_face(page, 0)
    slider = "[data-testid=slider][data-direction='Bright']"
    page.wait_for_selector(slider, state="attached")
    badge = page.locator(".slider[data-direction='Bright'] [data-testid=quality-badge]")
    at = served.quality["rows"]["Bright"]["mean_difference"]["suggested"]  # the judge's figures at the step, +1
    passed = at["success"] >= 0.85 and at["churn_ratio"] <= 1.5
    assert badge.inner_text() == (f"{'✓' if passed else '✗'} judge {at['success']:.2f} at +1 · churn "
                                  f"{at['churn_ratio']:.1f}× random")
    assert badge.get_attribute("class") == "badge " + ("pass" if passed else "fail")
    title = badge.get_attribute("title")
    assert "independent judge" in title and "goals: success ≥ 0.85, churn ≤ 1.5× random" in title
    assert page.get_attribute(slider, "data-suggested") == "1"
    assert page.locator(".slider[data-direction='Never'] [data-testid=quality-badge]").count() == 0
    assert page.locator(".slider[data-direction='SeFa 1'] [data-testid=quality-badge]").count() == 0
    old = page.get_attribute("[data-testid=face-big]", "src")
    badge.click()
    assert page.input_value(slider) == "1"
    wait_js(page, "document.getElementById('face-big').src !== arg", old, what="the face to move to the step")
    assert "Bright +1" in page.inner_text("[data-testid=face-caption]")
    page.locator("#sliders").screenshot(path=os.path.join(artifacts_dir, "studio-quality-badge.png"))
