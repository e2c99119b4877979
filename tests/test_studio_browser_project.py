"""The studio's "your own face" panel and the editable z map in real Chromium (Playwright), against the studio, our
model server and the tiny generator exported with its discriminator: an upload shows the crop beside the model's
reconstruction, that face becomes the selected one and a slider moves it; a picture without a face offers a
centre-crop; dragging or clicking a cell of the z map changes that dimension and the face. Screenshots go to
test-artifacts/ (studio-project-*.png)."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import test_studio_browser
from serving_helpers import MODEL, add_version, running_server, write_config
from test_projection import projectable_model
from test_studio_api import fake_directions
from test_studio_browser import (
    browser_pixels,
    open_studio,
    select_face,
    shown_z,
    src_pixels,
    wait_for_new_face,
    wait_js,
)

from dcgan import images as imlib
from dcgan.directions import write_directions
from dcgan.latent import z_from_seeds

pytestmark = [pytest.mark.browser, pytest.mark.stack_neutral]  # make test-current skips it

# The browser and a fresh tab per test, as in the studio's other browser tests (the tab fails a test on any JavaScript
# error); `page` asks for this module's `studio`.
browser = test_studio_browser.browser
page = test_studio_browser.page


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_run):
    root = tmp_path_factory.mktemp("studio_browser_project")
    base = str(root / "models" / MODEL)
    path = add_version(projectable_model(tmp_path_factory, tiny_run), base, 1)
    write_directions(path, fake_directions(("Smiling",), seed=1))
    config = write_config(str(root / "models.config"), [{"name": MODEL, "base_path": base}])
    with running_server(model_config_file=config) as server:
        yield SimpleNamespace(server=server, base=base)


@pytest.fixture(scope="module")
def studio(served):
    from serving.studio.config import StudioConfig
    from serving.studio.server import StudioServer

    with StudioServer(StudioConfig(server=served.server.grpc_target, port=0, model_base_path=served.base)) as s:
        yield s


def upload(page, name: str, data: bytes, center: bool = False) -> None:
    page.set_input_files("[data-testid=project-file]", files=[{"name": name, "mimeType": "image/png",
                                                               "buffer": data}])
    if center:
        page.check("[data-testid=project-center]")
    page.click("[data-testid=project-run]")


def test_upload_shows_the_reconstruction_whose_z_the_sliders_then_move(page, studio, served, artifacts_dir):
    open_studio(page, studio.url)
    z_target = z_from_seeds([31], 100)[0]
    from serving.client import ServingClient

    with ServingClient(served.server.grpc_target) as client:
        target = imlib.to_uint8(client.images(z_target[None], model=MODEL).outputs["images"])[0]
    upload(page, "me.png", imlib.encode_png(target))
    page.wait_for_selector("[data-testid=project-reconstruction] img")
    original = browser_pixels(page, "[data-testid=project-original] img")[0]
    recon = browser_pixels(page, "[data-testid=project-reconstruction] img")[0]
    np.testing.assert_array_equal(original, target)
    assert np.abs(recon.astype(int) - target).mean() < 12, "the reconstruction should look like the upload"
    assert "centre-cropped" in page.inner_text("[data-testid=project-note]")
    # The projected face is the selected one: the inspector shows it and its z.
    assert page.get_attribute("[data-testid=face-big]", "src") == page.get_attribute(
        "[data-testid=project-reconstruction] img", "src")
    assert "your face" in page.inner_text("[data-testid=face-caption]")
    z = shown_z(page)
    assert z.shape == (100,)
    page.locator("#project-section").screenshot(path=os.path.join(artifacts_dir, "studio-project-upload.png"))
    # A slider moves it from there.
    page.wait_for_selector("[data-testid=slider][data-direction=Smiling]", state="attached")
    before = browser_pixels(page, "[data-testid=face-big]")[0]
    old = page.get_attribute("[data-testid=face-big]", "src")
    page.eval_on_selector("[data-testid=slider][data-direction=Smiling]",
                          "e => { e.value = 3; e.dispatchEvent(new Event('input')); }")
    wait_for_new_face(page, old)
    after = browser_pixels(page, "[data-testid=face-big]")[0]
    assert np.abs(after.astype(int) - before).mean() > 2, "the slider did not change the projected face"
    with open(os.path.join(served.base, "1", "assets.extra", "directions.json")) as f:
        smiling = np.array(json.load(f)["attributes"]["Smiling"]["vector"])
    np.testing.assert_allclose(shown_z(page), z + 3 * smiling, atol=1e-4)


def test_a_picture_without_a_face_offers_a_centre_crop(page, studio):
    open_studio(page, studio.url)
    noise = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    upload(page, "landscape.png", imlib.encode_png(noise))
    page.wait_for_selector("[data-testid=error-project]:not([hidden])")
    assert "no face found" in page.inner_text("[data-testid=error-project]")
    page.click("[data-testid=project-offer]")
    page.wait_for_selector("[data-testid=project-reconstruction] img")
    assert page.is_checked("[data-testid=project-center]")
    assert page.is_hidden("[data-testid=error-project]")


def test_not_an_image_is_reported_on_the_panel(page, studio):
    open_studio(page, studio.url)
    upload(page, "notes.png", b"just some text")
    page.wait_for_selector("[data-testid=error-project]:not([hidden])")
    assert "not a usable image" in page.inner_text("[data-testid=error-project]")


def _cell_centre(page, index: int) -> tuple[float, float]:
    box = page.locator("[data-testid=z-map]").bounding_box()
    cols = 10
    return (box["x"] + (index % cols + 0.5) * box["width"] / cols,
            box["y"] + (index // cols + 0.5) * box["height"] / cols)


def test_dragging_a_z_cell_changes_that_dimension_and_the_face(page, studio, artifacts_dir):
    open_studio(page, studio.url)
    select_face(page, 3)
    z0 = shown_z(page)
    before = src_pixels(page, "[data-testid=face-big]")
    old = page.get_attribute("[data-testid=face-big]", "src")
    x, y = _cell_centre(page, 42)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y - 30, steps=5)  # up: +1.5
    page.mouse.move(x, y - 60, steps=5)  # up: +3
    page.mouse.up()
    # While dragging, faces are shown as they come; on release the last one becomes the selected face.
    wait_js(page, "state.selected && state.selected.source.startsWith('edited z[42]') && !zEdit.rendering",
            what="the edited face to be selected")
    wait_for_new_face(page, old)
    z1 = shown_z(page)
    changed = np.flatnonzero(np.abs(z1 - z0) > 1e-6)
    assert changed.tolist() == [42], f"only z[42] may change, changed: {changed.tolist()}"
    assert z1[42] == pytest.approx(min(4.0, z0[42] + 3.0), abs=0.05)
    after = src_pixels(page, "[data-testid=face-big]")
    assert np.abs(after.astype(int) - before).mean() > 0.5, "editing z[42] did not change the face"
    page.locator("[data-testid=inspector]").screenshot(path=os.path.join(artifacts_dir, "studio-project-zmap.png"))
    # A click (no drag) flips the sign of the cell.
    old = page.get_attribute("[data-testid=face-big]", "src")
    x, y = _cell_centre(page, 7)
    page.mouse.click(x, y)
    wait_js(page, "state.selected && state.selected.source.startsWith('edited z[7]') && !zEdit.rendering")
    wait_for_new_face(page, old)
    np.testing.assert_allclose(shown_z(page)[7], -z1[7], atol=1e-2)
