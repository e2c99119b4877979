"""The studio page in real Chromium (Playwright), against the studio backend, our model server and the tiny exported
generator: faces decode and are not blank, a face's z regenerates its pixels, walks end on the picked faces,
sliders move faces, the arithmetic board works, and a dead model server is shown (and recovers). Screenshots go
to test-artifacts/ (studio-*.png)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import free_port
from serving_helpers import MODEL, running_server
from test_studio_api import served_models, visible_tiny_model

from dcgan.images import decode_png
from dcgan.latent import z_from_seeds

pytestmark = [pytest.mark.browser, pytest.mark.stack_neutral]  # make test-current skips it

CHROMIUM = os.environ.get("DCGAN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 30_000


# -- fixtures -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_run):
    root = tmp_path_factory.mktemp("studio_browser")
    base, config = served_models(root, visible_tiny_model(tmp_path_factory, tiny_run))
    with running_server(model_config_file=config, allow_version_labels_for_unavailable_models=True) as server:
        yield SimpleNamespace(server=server, base=base, config=config)


@pytest.fixture(scope="module")
def studio(served):
    from serving.studio.config import StudioConfig
    from serving.studio.server import StudioServer

    with StudioServer(StudioConfig(server=served.server.grpc_target, port=0, model_base_path=served.base)) as s:
        yield s


@pytest.fixture(scope="module")
def model_client(served):
    from serving.client import ServingClient

    with ServingClient(served.server.grpc_target) as client:
        yield client


@pytest.fixture(scope="module")
def browser():
    """Real Chromium (the Debian package; Playwright cannot download browsers here) with a fresh profile."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: run scripts/ensure_chromium.sh "
                    "(or set DCGAN_CHROMIUM to a Chromium binary)")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="studio-chromium-")
    playwright = sync_playwright().start()
    try:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, accept_downloads=True,
            viewport={"width": 1360, "height": 1500})
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()
    finally:
        playwright.stop()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser, studio):
    """A fresh tab; fails the test on any JavaScript error or any request that leaves the studio."""
    tab = browser.new_page()
    errors, requests = [], []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.on("request", lambda r: requests.append(r.url))
    tab.studio_requests = requests
    try:
        yield tab
    finally:
        tab.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def wait_js(page, expression: str, arg=None, timeout: float = TIMEOUT_MS / 1000, what: str = "") -> None:
    """Poll a JavaScript expression until it is truthy. (Playwright's wait_for_function polls with eval() inside
    the page, which the studio's Content-Security-Policy forbids, as it should; page.evaluate is not affected.)"""
    deadline = time.monotonic() + timeout
    script = f"(arg) => ({expression})"
    while not page.evaluate(script, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or expression}")
        time.sleep(0.05)


def open_studio(page, url: str, faces: int = 24) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    if faces:
        wait_js(page, f"document.querySelectorAll('#grid [data-testid=face] img').length === {faces}")


def browser_pixels(page, selector: str) -> list[np.ndarray]:
    """RGB pixels of the <img> elements matching `selector`, as the browser decoded them (drawn to a canvas)."""
    images = page.eval_on_selector_all(selector, """imgs => imgs.map(img => {
        if (!img.complete || img.naturalWidth === 0) return null;
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(img, 0, 0);
        return {w: c.width, h: c.height, data: Array.from(ctx.getImageData(0, 0, c.width, c.height).data)};
    })""")
    out = []
    for image in images:
        assert image is not None, f"an image of {selector} was not decoded by the browser"
        rgba = np.array(image["data"], np.uint8).reshape(image["h"], image["w"], 4)
        assert (rgba[..., 3] == 255).all()
        out.append(rgba[..., :3])
    return out


def src_pixels(page, selector: str) -> np.ndarray:
    src = page.get_attribute(selector, "src")
    return decode_png(base64.b64decode(src.split(",", 1)[1]))


def select_face(page, index: int) -> None:
    page.locator("#grid [data-testid=face]").nth(index).click()
    page.wait_for_selector("#inspector-body:not([hidden])")


def shown_z(page) -> np.ndarray:
    return np.array(json.loads(page.input_value("[data-testid=z-json]")), np.float32)


def wait_for_new_face(page, old_src: str) -> str:
    wait_js(page, "document.getElementById('face-big').src !== arg", old_src, what="the face to change")
    return page.get_attribute("[data-testid=face-big]", "src")


# -- tests ----------------------------------------------------------------------------------------------------------
def test_grid_shows_real_decoded_faces_and_loads_nothing_from_elsewhere(page, studio, artifacts_dir):
    open_studio(page, studio.url)
    decoded = browser_pixels(page, "#grid [data-testid=face] img")
    assert len(decoded) == 24
    for i, (img, el) in enumerate(zip(decoded, page.locator("#grid [data-testid=face] img").all())):
        assert img.shape == (32, 32, 3)
        assert img.std() > 10, f"face {i} is blank (pixel std {img.std():.1f})"
        from_png = decode_png(base64.b64decode(el.get_attribute("src").split(",", 1)[1]))
        np.testing.assert_array_equal(img, from_png)  # the browser decoded exactly the model's PNG
    assert not np.array_equal(decoded[0], decoded[1])
    assert page.locator("#grid [data-testid=face]").first.get_attribute("data-seed") == "0"
    assert "version 2" in page.inner_text("[data-testid=status]")
    assert page.is_hidden("[data-testid=banner]")
    local = [u for u in page.studio_requests if not u.startswith((studio.url, "data:", "blob:"))]
    assert not local, f"the page requested something outside the studio: {local}"
    page.screenshot(path=os.path.join(artifacts_dir, "studio-grid.png"), full_page=True)


def test_a_faces_z_regenerates_its_pixels_and_a_pasted_z_renders(page, studio, model_client, artifacts_dir):
    from dcgan.images import to_uint8

    open_studio(page, studio.url)
    grid = browser_pixels(page, "#grid [data-testid=face] img")
    select_face(page, 3)
    assert page.inner_text("[data-testid=face-caption]").startswith("seed 3")
    z = shown_z(page)
    assert z.shape == (100,)
    np.testing.assert_allclose(z, z_from_seeds([3], 100)[0], atol=1e-6)
    # Through the model server's API, directly (serving_default): the z shown gives the pixels shown.
    again = to_uint8(model_client.images(z[None], model=MODEL).outputs["images"])[0]
    np.testing.assert_array_equal(again, grid[3])
    np.testing.assert_array_equal(browser_pixels(page, "[data-testid=face-big]")[0], grid[3])
    assert page.inner_text("[data-testid=z-stats]").startswith("100 values")
    cells = page.evaluate("""() => { const c = document.getElementById('z-map');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }""")
    assert len(cells) == 10 * 10 * 4 and len(set(cells)) > 10, "the z map is not drawn"

    # Paste the z of another seed: the page renders exactly that face.
    old = page.get_attribute("[data-testid=face-big]", "src")
    page.fill("[data-testid=z-json]", json.dumps(z_from_seeds([40], 100)[0].tolist()))
    page.click("[data-testid=render-z]")
    wait_for_new_face(page, old)
    expected = decode_png(model_client.generate([40], model=MODEL).png[0])
    np.testing.assert_array_equal(browser_pixels(page, "[data-testid=face-big]")[0], expected)
    assert page.inner_text("[data-testid=face-caption]").startswith("pasted z")

    # Download PNG: the file is the face shown.
    with page.expect_download() as download:
        page.click("[data-testid=download]")
    path = download.value.path()
    np.testing.assert_array_equal(decode_png(open(path, "rb").read()), expected)
    assert download.value.suggested_filename.endswith(".png")

    # A bad paste is explained, and nothing else changes.
    page.fill("[data-testid=z-json]", "[1, 2]")
    page.click("[data-testid=render-z]")
    page.wait_for_selector("[data-testid=error-z]:not([hidden])")
    assert "has 2 values; the model takes 100" in page.inner_text("[data-testid=error-z]")
    page.fill("[data-testid=z-json]", "not json")
    page.click("[data-testid=render-z]")
    assert "not JSON" in page.inner_text("[data-testid=error-z]")
    page.locator("[data-testid=inspector]").screenshot(path=os.path.join(artifacts_dir, "studio-face.png"))


def test_interpolation_strip_starts_and_ends_on_the_two_picked_faces(page, studio, artifacts_dir):
    open_studio(page, studio.url)
    grid = browser_pixels(page, "#grid [data-testid=face] img")
    select_face(page, 1)
    page.click("[data-testid=set-walk-a]")
    select_face(page, 6)
    page.click("[data-testid=set-walk-b]")
    for method in ("lerp", "slerp"):
        page.fill("[data-testid=steps]", "7")
        page.select_option("[data-testid=method]", method)
        page.click("[data-testid=walk]")
        wait_js(page, "document.querySelectorAll('#strip [data-testid=face] img').length === 7 && "
                      f"document.querySelector('#strip .cap').textContent.startsWith('{method}')")
        frames = browser_pixels(page, "#strip [data-testid=face] img")
        np.testing.assert_array_equal(frames[0], grid[1])
        np.testing.assert_array_equal(frames[-1], grid[6])
        assert not np.array_equal(frames[3], grid[1]) and not np.array_equal(frames[3], grid[6])
    # A frame is a face like any other: select it and its z is on the slerp path.
    page.locator("#strip [data-testid=face]").nth(3).click()
    assert page.inner_text("[data-testid=face-caption]").startswith("slerp t=0.50")
    from dcgan.latent import slerp

    z1, z6 = z_from_seeds([1, 6], 100)
    np.testing.assert_allclose(shown_z(page), slerp(z1, z6, 0.5), atol=1e-5)
    page.locator("#walk-section").screenshot(path=os.path.join(artifacts_dir, "studio-walk.png"))


def test_a_slider_moves_the_face_along_its_direction(page, studio, served, artifacts_dir):
    open_studio(page, studio.url)
    page.wait_for_selector("[data-testid=slider][data-direction=Smiling]", state="attached")
    assert "Attribute directions of version 2" in page.inner_text("[data-testid=directions-note]")
    select_face(page, 2)
    before = browser_pixels(page, "[data-testid=face-big]")[0]
    old = page.get_attribute("[data-testid=face-big]", "src")
    page.eval_on_selector("[data-testid=slider][data-direction=Smiling]",
                          "e => { e.value = 3; e.dispatchEvent(new Event('input')); }")
    wait_for_new_face(page, old)
    after = browser_pixels(page, "[data-testid=face-big]")[0]
    assert np.abs(after.astype(int) - before).mean() > 2, "the slider did not change the face"
    assert "Smiling +3" in page.inner_text("[data-testid=face-caption]")
    with open(os.path.join(served.base, "2", "assets.extra", "directions.json")) as f:
        smiling = np.array(json.load(f)["attributes"]["Smiling"]["vector"])
    np.testing.assert_allclose(shown_z(page), z_from_seeds([2], 100)[0] + 3 * smiling, atol=1e-5)

    # Your own direction from picked faces becomes a slider too.
    for index, side in ((0, "with"), (5, "with"), (7, "without"), (9, "without")):
        select_face(page, index)
        page.click(f"[data-testid=add-{side}]")
    page.fill("[data-testid=custom-name]", "mine")
    page.click("[data-testid=custom-create]")
    page.wait_for_selector(".slider.custom [data-testid=slider][data-direction=mine]")
    select_face(page, 2)
    old = page.get_attribute("[data-testid=face-big]", "src")
    page.eval_on_selector("[data-testid=slider][data-direction=mine]",
                          "e => { e.value = -2.5; e.dispatchEvent(new Event('input')); }")
    wait_for_new_face(page, old)
    assert np.abs(browser_pixels(page, "[data-testid=face-big]")[0].astype(int) - before).mean() > 2
    page.locator("[data-testid=inspector]").screenshot(path=os.path.join(artifacts_dir, "studio-sliders.png"))
    page.click("[data-testid=reset-sliders]")
    wait_js(page, "document.getElementById('face-caption').textContent.startsWith('seed 2 ·')")
    np.testing.assert_array_equal(browser_pixels(page, "[data-testid=face-big]")[0], before)

    # Another label: another version, its own directions.
    page.select_option("[data-testid=label]", "stable")
    page.click("#target-form button[type=submit]")
    wait_js(page, "document.getElementById('status').textContent.includes('version 1 (stable)')")
    page.wait_for_selector("[data-testid=slider][data-direction=Eyeglasses]")


def test_arithmetic_board_shows_the_means_the_result_and_variations(page, studio, artifacts_dir):
    open_studio(page, studio.url)
    for index, group in ((0, "a"), (1, "a"), (2, "b"), (3, "c"), (4, "c")):
        select_face(page, index)
        page.click(f"[data-testid=add-{group}]")
    page.select_option("[data-testid=variations]", "4")
    page.click("[data-testid=arith-run]")
    wait_js(page, "document.querySelectorAll('#arith-result [data-testid=face] img').length === 8")
    captions = page.locator("#arith-result .cap").all_inner_texts()
    assert captions[:4] == ["mean A", "mean B", "mean C", "A − B + C"]
    assert all(not np.array_equal(a, b) for a, b in zip(browser_pixels(page, "#arith-result img")[3:],
                                                          browser_pixels(page, "#arith-result img")[4:]))
    page.locator("#arith-result [data-testid=face]").nth(3).click()
    z = z_from_seeds([0, 1, 2, 3, 4], 100)
    np.testing.assert_allclose(shown_z(page), z[0:2].mean(0) - z[2] + z[3:5].mean(0), atol=1e-5)
    page.locator("#arith-section").screenshot(path=os.path.join(artifacts_dir, "studio-arithmetic.png"))


def test_a_dead_model_server_is_shown_and_the_page_recovers_when_it_starts(browser, served, artifacts_dir):
    from serving.studio.config import StudioConfig
    from serving.studio.server import StudioServer

    port = free_port()
    with StudioServer(StudioConfig(server=f"127.0.0.1:{port}", port=0, model_base_path=served.base)) as down:
        tab = browser.new_page()
        errors = []
        tab.on("pageerror", lambda e: errors.append(str(e)))
        try:
            open_studio(tab, down.url, faces=0)
            tab.wait_for_selector("[data-testid=banner]:not([hidden])")
            banner = tab.inner_text("[data-testid=banner]")
            assert "Model server unavailable" in banner and f"127.0.0.1:{port}" in banner, banner
            assert "Retrying" in banner
            assert tab.inner_text("[data-testid=status]") == "model server down"
            tab.click("[data-testid=generate]")
            tab.wait_for_selector("[data-testid=error-grid]:not([hidden])")
            assert "model server is unavailable" in tab.inner_text("[data-testid=error-grid]")
            assert tab.locator("#grid [data-testid=face]").count() == 0
            tab.screenshot(path=os.path.join(artifacts_dir, "studio-server-down.png"), full_page=True)

            with running_server(port=port, rest_api_port=0, model_config_file=served.config,
                                allow_version_labels_for_unavailable_models=True):
                tab.click("#banner-retry")
                tab.wait_for_selector("[data-testid=banner]", state="hidden", timeout=20_000)
                wait_js(tab, "document.querySelectorAll('#grid [data-testid=face] img').length === 24")
                assert tab.is_hidden("[data-testid=error-grid]")
                assert "version 2" in tab.inner_text("[data-testid=status]")
        finally:
            tab.close()
    assert not errors, errors
