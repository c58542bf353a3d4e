"""The web playground in a real browser: Debian's chromium, headless, driven by selenium through
chromium-driver (``.ci/run`` installs both). Loads the page, speaks (streamed, words highlighted),
checks the audio element plays a decodable file, registers a voice and follows its job, and
leaves a screenshot in docs/playground.png."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.e2e

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "playground.png"


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium "
                    "chromium-driver; .ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--autoplay-policy=no-user-gesture-required",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, script: str, timeout: float = 180):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: d.execute_script(script))


PLAY = """
const done = arguments[arguments.length - 1];
const audio = document.getElementById('audio');
const report = (how) => done({how, duration: audio.duration, time: audio.currentTime,
                              error: audio.error && audio.error.code, src: audio.currentSrc});
audio.addEventListener('error', () => report('error'));
audio.addEventListener('timeupdate', () => { if (audio.currentTime > 0.3) report('playing'); });
audio.play().catch((e) => done({how: 'refused', error: String(e)}));
"""


def speak(driver, text: str, fmt: str) -> dict:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    box = driver.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    Select(driver.find_element(By.ID, "format")).select_by_visible_text(fmt)
    driver.find_element(By.ID, "speak").click()
    wait_for(driver, "return ['done', 'error'].includes(document.body.dataset.state)")
    assert driver.execute_script("return document.body.dataset.state") == "done", \
        driver.find_element(By.ID, "status").text
    return driver.execute_async_script(PLAY)


def test_playground_speaks_highlights_words_and_plays_a_decodable_file(service, browser):
    from selenium.webdriver.common.by import By

    browser.get(service["base"] + "/")
    assert browser.current_url.endswith("/playground") and "VoxServe playground" in browser.title
    wait_for(browser, "return document.getElementById('voice').options.length > 1")
    voices = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#voice option")]
    assert "en_US-joe-medium" in voices
    played = speak(browser, "Hello from the playground. Words light up as they are spoken.", "wav")
    assert played["how"] == "playing" and played["error"] is None and played["duration"] > 2
    words = [s.text for s in browser.find_elements(By.CSS_SELECTOR, "#words span")]
    assert words[:4] == ["Hello", "from", "the", "playground"]
    assert browser.find_element(By.ID, "tFirst").text.endswith("ms")
    # Words light up while the stream plays (the highlight follows the audio clock).
    wait_for(browser, "return document.querySelectorAll('#words span.said').length > 0", timeout=20)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    mp3 = speak(browser, "Now the same page asks for an MP3 file.", "mp3")
    assert mp3["how"] == "playing" and mp3["error"] is None and mp3["src"].split("?")[0].endswith(".mp3")


def test_playground_registers_a_voice_and_follows_its_job(service, browser, tmp_path):
    from selenium.webdriver.common.by import By

    from tests.audio_fixtures import SR, speaker_clip

    clip = np.concatenate([speaker_clip("child", 2), speaker_clip("child", 3)])
    path = tmp_path / "me.wav"
    buffer = io.BytesIO()
    sf.write(buffer, clip, SR, format="WAV")
    path.write_bytes(buffer.getvalue())
    browser.get(service["base"] + "/playground")
    name = browser.find_element(By.ID, "voiceName")
    name.clear()
    name.send_keys("playground voice")
    browser.find_element(By.ID, "clip").send_keys(str(path))
    browser.find_element(By.ID, "register").click()
    wait_for(browser, "return ['ready', 'failed'].includes(document.body.dataset.job) "
                      "|| /Refused|Error/.test(document.getElementById('jobStatus').textContent)")
    text = browser.find_element(By.ID, "jobStatus").text
    assert "ready" in text, text
    voice_id = text.split(":")[0]
    assert browser.execute_script("return document.getElementById('voice').value") == voice_id
