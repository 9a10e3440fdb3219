"""The try-it page in a real headless Chromium, against a real TorchServe (CORS on)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import CONTENT, STYLE

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "out" / "web-page.png"

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail("chromium and chromedriver are needed: make tools installs them")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)  # --no-sandbox: CI runs as root
    options.add_argument("--window-size=1280,1000")
    options.binary_location = binary
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    yield chrome
    chrome.quit()


def open_page(browser, server):
    browser.get(server.web)
    WebDriverWait(browser, 20).until(
        lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true"
    )


def set_value(browser, element_id: str, value: str) -> None:
    field = browser.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(value)


def shown(browser, element_id: str) -> bool:
    return browser.find_element(By.ID, element_id).is_displayed()


def test_the_page_and_its_samples_are_served(server):
    page = requests.get(server.web, timeout=10)
    assert page.status_code == 200 and "<title>Style transfer</title>" in page.text
    assert requests.get(server.web + "examples/astronaut.jpg", timeout=10).status_code == 200
    config = requests.get(server.web + "config.json", timeout=10).json()
    assert config["inference"] == server.inference
    # only the sample images, never other files of the checkout nor a folder's listing
    for path in (
        "examples/../pyproject.toml",
        "examples/../",
        "examples/%2e%2e/",
        "examples/",
        "examples/..%2fpyproject.toml",
        "",  # web/ has an index.html: the page, not a listing
    ):
        reply = requests.get(server.web + path, timeout=10)
        assert reply.status_code == 404 or "<title>Style transfer</title>" in reply.text, path
        assert "pyproject" not in reply.text and "Directory listing" not in reply.text, path
    for reply in (page, requests.get(server.web + "examples/nothing.jpg", timeout=10)):
        policy = reply.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and f"connect-src 'self' {server.inference}" in (
            policy
        )
        assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_upload_stylise_watch_progress_and_download(browser, server):
    open_page(browser, server)
    browser.find_element(By.ID, "content-file").send_keys(str(CONTENT / "chelsea.png"))
    browser.find_element(By.CSS_SELECTOR, ".style-file").send_keys(str(STYLE / "the_scream.jpg"))
    set_value(browser, "size", "96")
    set_value(browser, "steps", "60")
    browser.find_element(By.ID, "stylise").click()

    seen_steps, previews = set(), 0
    deadline = time.monotonic() + 120
    while not shown(browser, "result-box") and time.monotonic() < deadline:
        assert not shown(browser, "error"), browser.find_element(By.ID, "error").text
        seen_steps.add(int(float(browser.find_element(By.ID, "progress").get_attribute("value"))))
        previews += shown(browser, "preview")
        time.sleep(0.05)
    assert shown(browser, "result-box"), "no result within 120 s"
    assert len(seen_steps - {0, 60}) >= 2, f"progress did not advance: {sorted(seen_steps)}"
    assert previews > 0, "no preview was shown while it ran"

    result = browser.find_element(By.ID, "result")
    size = browser.execute_script(
        "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", result
    )
    assert size == [96, 64]  # chelsea is 3:2, longest side as asked
    link = browser.find_element(By.ID, "download")
    assert link.get_attribute("href").startswith("blob:")
    assert link.get_attribute("download") == "stylised.png"
    assert "60 steps" in browser.find_element(By.ID, "figures").text
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))


def test_samples_are_one_click_away_and_a_bad_file_is_named(browser, server, tmp_path):
    open_page(browser, server)
    browser.find_element(By.ID, "use-samples").click()
    WebDriverWait(browser, 10).until(lambda b: shown(b, "content-thumb"))
    assert browser.find_element(By.CSS_SELECTOR, ".style-slot .thumb").is_displayed()

    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    browser.find_element(By.ID, "content-file").send_keys(str(bad))
    set_value(browser, "size", "64")
    set_value(browser, "steps", "3")
    browser.find_element(By.ID, "stylise").click()
    WebDriverWait(browser, 60).until(lambda b: shown(b, "error"))
    message = browser.find_element(By.ID, "error").text
    assert message.startswith("content:") and "not_an_image" in message and "400" in message
    assert "bad" in browser.find_element(By.ID, "content-drop").get_attribute("class")
    assert not shown(browser, "result-box")


def test_a_second_style_with_weights_and_a_parameter_error(browser, server):
    open_page(browser, server)
    browser.find_element(By.ID, "use-samples").click()
    WebDriverWait(browser, 10).until(lambda b: shown(b, "content-thumb"))
    browser.find_element(By.ID, "add-style").click()
    slots = browser.find_elements(By.CSS_SELECTOR, ".style-slot")
    assert len(slots) == 2
    slots[1].find_element(By.CSS_SELECTOR, ".style-file").send_keys(str(STYLE / "shipwreck.jpg"))
    set_value(browser, "size", "2000")  # allowed by the page, above the server's limit
    browser.find_element(By.ID, "stylise").click()
    WebDriverWait(browser, 60).until(lambda b: shown(b, "error"))
    assert browser.find_element(By.ID, "error").text.startswith("size:")
    assert "bad-field" in browser.find_element(By.ID, "size").get_attribute("class")

    set_value(browser, "size", "64")
    set_value(browser, "steps", "4")
    browser.find_element(By.ID, "stylise").click()
    WebDriverWait(browser, 90).until(lambda b: shown(b, "result-box") or shown(b, "error"))
    assert not shown(browser, "error"), browser.find_element(By.ID, "error").text
    assert "4 steps" in browser.find_element(By.ID, "figures").text

    set_value(browser, "steps", "400")  # far more than a second's work
    set_value(browser, "time_limit", "1")
    browser.find_element(By.ID, "stylise").click()
    WebDriverWait(browser, 90).until(
        lambda b: "time_limit" in b.find_element(By.ID, "figures").text or shown(b, "error")
    )
    assert "400 steps" not in browser.find_element(By.ID, "figures").text


def test_the_page_offers_as_many_styles_as_the_served_model_takes(browser, server):
    described = requests.get(
        f"{server.management}/models/style_transfer", params={"customized": "true"}, timeout=60
    ).json()
    limit = described[0]["customizedMetadata"]["limits"]["max_styles"]
    assert requests.get(server.web + "config.json", timeout=10).json()["max_styles"] == limit
    open_page(browser, server)
    while shown(browser, "add-style"):
        browser.find_element(By.ID, "add-style").click()
    assert len(browser.find_elements(By.CSS_SELECTOR, ".style-slot")) == limit


def test_a_mask_and_the_style_statistics_reach_the_server(browser, server, tmp_path):
    from PIL import Image

    open_page(browser, server)
    browser.find_element(By.ID, "use-samples").click()
    WebDriverWait(browser, 10).until(lambda b: shown(b, "content-thumb"))
    wide = tmp_path / "wide-mask.png"
    Image.new("RGB", (60, 20), (255, 255, 255)).save(wide)  # the sample photo is square
    browser.find_element(By.ID, "mask-file").send_keys(str(wide))
    WebDriverWait(browser, 10).until(lambda b: shown(b, "mask-thumb"))
    browser.find_element(By.CSS_SELECTOR, "#style_loss option[value=mean_cov]").click()
    browser.find_element(By.CSS_SELECTOR, "#preserve_color option[value=original_colors]").click()
    set_value(browser, "size", "64")
    set_value(browser, "steps", "3")
    browser.find_element(By.ID, "stylise").click()
    WebDriverWait(browser, 60).until(lambda b: shown(b, "error"))
    assert browser.find_element(By.ID, "error").text.startswith("mask:")
    assert "bad" in browser.find_element(By.ID, "mask-drop").get_attribute("class")

    browser.find_element(By.ID, "clear-mask").click()  # without the mask it runs
    browser.find_element(By.ID, "stylise").click()
    WebDriverWait(browser, 90).until(lambda b: shown(b, "result-box") or shown(b, "error"))
    assert not shown(browser, "error"), browser.find_element(By.ID, "error").text
    assert "3 steps" in browser.find_element(By.ID, "figures").text


def test_a_job_is_found_again_after_a_reload_and_cancelled(browser, server):
    """With the jobs API the page follows its job by id: a reload picks it up again, and
    Cancel stops it in the worker, showing the image it had reached."""
    config = requests.get(server.web + "config.json", timeout=10).json()
    assert config["jobs"] == server.jobs
    open_page(browser, server)
    browser.find_element(By.ID, "use-samples").click()
    WebDriverWait(browser, 10).until(lambda b: shown(b, "content-thumb"))
    set_value(browser, "size", "96")
    set_value(browser, "steps", "400")
    browser.find_element(By.ID, "stylise").click()
    running = lambda b: b.find_element(By.ID, "status").text.startswith("Step")  # noqa: E731
    WebDriverWait(browser, 60).until(running)
    job_id = browser.execute_script("return localStorage.getItem('nst-job')")
    assert job_id

    browser.refresh()
    WebDriverWait(browser, 20).until(lambda b: running(b) and shown(b, "cancel"))
    assert browser.find_element(By.ID, "stylise").get_attribute("disabled")
    browser.find_element(By.ID, "cancel").click()
    WebDriverWait(browser, 60).until(lambda b: shown(b, "result-box") or shown(b, "error"))
    assert not shown(browser, "error"), browser.find_element(By.ID, "error").text
    assert "stopped: cancelled" in browser.find_element(By.ID, "figures").text
    assert browser.find_element(By.ID, "status").text.startswith("Cancelled")
    assert not shown(browser, "cancel")
    assert browser.execute_script("return localStorage.getItem('nst-job')") is None
    job = requests.get(f"{server.jobs}/v1/jobs/{job_id}", timeout=10).json()
    assert job["status"] == "cancelled" and 0 < job["result"]["steps_run"] < 400
