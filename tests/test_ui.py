"""`facecue ui`: widget parsing, limits, and the page end to end in a real headless Chromium.

The browser tests start ``facecue ui`` in a subprocess on a free port and drive the page with
Playwright and the system Chromium (/usr/bin/chromium); they skip when either is missing (nothing
is installed at run time). Set FACECUE_UI_SCREENSHOT=path.png to keep the finished page's screenshot.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from facecue.cli import asset_path
from facecue.errors import InputError, NoFaceError
from facecue.io import read_audio, read_image, write_image, write_wav
from facecue.ui import (
    DEFAULT_MAX_UPLOAD_MB, FRAMINGS, SIZE_AUTO, Jobs, check_audio_length, config_from_widgets, portrait_landmarks_png,
    user_message,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage",
                 # a test tone as the microphone, allowed without a prompt
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
SRC = Path(__file__).resolve().parents[1] / "src"


def widgets(**changes):
    """The page's default widget values, with ``changes``."""
    values = dict(emotion="neutral", schedule="", intensity=1.0, pose_scale=1.0, gaze_mode="auto", gaze_yaw=0,
                  gaze_pitch=0, blink_rate="auto", seed=0, size=SIZE_AUTO, framing=FRAMINGS[0], cue_model="auto")
    values.update(changes)
    return values


# --- the thin layer, without a browser --------------------------------------------------------


def test_widget_values_become_the_config():
    config = config_from_widgets(**widgets())
    assert (config.emotion, config.gaze, config.blink_rate) == ("neutral", "auto", None)
    assert config.size is None and config.full is True
    config = config_from_widgets(**widgets(emotion="sad", schedule=" neutral@0,happy@1.5 ", gaze_mode="custom",
                                           gaze_yaw=12, gaze_pitch=-5.5, blink_rate="20", seed=3.0, size="256",
                                           framing=FRAMINGS[1], intensity=0.4, pose_scale=0.5, cue_model="phonetic",
                                           mouth_scale=0.6, wrinkles=0.5))
    assert config.emotion == "neutral@0,happy@1.5", "a schedule replaces the dropdown's emotion"
    assert config.gaze == "12,-5.5" and config.blink_rate == 20.0 and config.seed == 3 and isinstance(config.seed, int)
    assert config.size == 256 and config.full is False and config.intensity == 0.4 and config.pose_scale == 0.5
    assert config.cue_model == "phonetic" and config.max_seconds is not None and config.mouth_scale == 0.6
    assert config.mouth_from is None and config.wrinkles == 0.5
    assert config_from_widgets(**widgets()).wrinkles == 1.0, "the creases as calibrated unless asked"
    config = config_from_widgets(**widgets(mouth_scale=0.6, mouth_from="/uploads/them_talking.mp4"))
    assert config.mouth_from == "/uploads/them_talking.mp4" and config.mouth_scale == 1.0, "the video sets the mouth"


@pytest.mark.parametrize("change, message", [
    (dict(emotion="bored"), "bored"),
    (dict(schedule="happy@x"), "happy@x"),
    (dict(size="huge"), "size"),
    (dict(size="20"), "size"),
    (dict(blink_rate="often"), "blink rate"),
    (dict(gaze_mode="custom", gaze_yaw=0, gaze_pitch=35), "gaze"),
    (dict(seed=1.5), "seed"),
    (dict(wrinkles=1.5), "wrinkles"),
])
def test_bad_widget_values_are_facecue_errors(change, message):
    with pytest.raises(InputError, match=message):
        config_from_widgets(**widgets(**change))


def test_messages_name_the_upload_not_the_temp_path():
    exc = NoFaceError("/tmp/gradio/0123abcd/me.png", "no face found in the image")
    assert user_message(exc) == "me.png: no face found in the image"
    assert user_message(InputError(None, "give speech")) == "give speech"


def test_audio_over_the_servers_limit_is_refused(tmp_path):
    clip = write_wav(tmp_path / "three.wav", np.zeros(3 * 16000, np.float32))
    assert check_audio_length(clip, 5) == pytest.approx(3, abs=0.01)
    with pytest.raises(InputError, match=r"three.wav: audio is 3 s long, over this server's 2 s limit"):
        check_audio_length(clip, 2)


def test_landmark_png_of_an_upload(tmp_path):
    jobs = Jobs(tmp_path / "jobs")
    png, note = portrait_landmarks_png(asset_path("portrait.png"), jobs, emotion="sad")
    image = read_image(png)
    assert note is not None and "smiles broadly" in note and "so sad may" in note  # the bundled portrait smiles
    assert portrait_landmarks_png(asset_path("portrait.png"), jobs, emotion="happy")[1] is None
    assert portrait_landmarks_png(asset_path("portrait.png"), jobs, emotion="sad@0,happy@")[1] is None  # being typed
    assert image.shape == (384, 384, 3) and png.parent.parent == jobs.root
    r, g, b = image.astype(int).transpose(2, 0, 1)
    assert ((g > 200) & (r < 140) & (b < 170)).sum() > 300, "green landmark dots drawn on the face crop"
    plain = write_image(tmp_path / "wall.png", np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(NoFaceError) as caught:
        portrait_landmarks_png(plain, jobs)
    assert caught.value.path == plain and user_message(caught.value).startswith("wall.png: no face found")


def test_old_job_folders_are_pruned(tmp_path):
    jobs = Jobs(tmp_path, max_age_s=60)
    old = jobs.new("job")
    os.utime(old, (time.time() - 120, time.time() - 120))
    fresh = jobs.new("job")
    assert fresh.is_dir() and not old.exists()


def test_prune_touches_only_the_servers_own_folders(tmp_path):
    """--output-dir may be a folder with the user's own files: old folders there (and files, and
    job folders of another server) survive; the server works in a folder of its own."""
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"jpeg")
    other_server = Jobs(tmp_path, max_age_s=60)
    theirs = other_server.new("job")
    for folder in (mine, theirs, other_server.root):
        os.utime(folder, (time.time() - 7200, time.time() - 7200))
    jobs = Jobs(tmp_path, max_age_s=60)
    assert jobs.root.parent == tmp_path and jobs.root not in (mine, other_server.root)
    jobs.new("job")
    jobs.prune()
    assert (mine / "holiday.jpg").read_bytes() == b"jpeg" and theirs.is_dir()


def test_exposed_host_warns_and_auth_reaches_gradio(monkeypatch, capsys):
    import facecue.ui
    from facecue.cli import main

    calls = []
    monkeypatch.setattr(facecue.ui, "launch", lambda *args, **kwargs: calls.append((args, kwargs)))
    assert main(["ui", "--host", "0.0.0.0", "--auth", "ann:s3cret:x"]) == 0
    assert calls[-1][1]["auth"] == ("ann", "s3cret:x")
    assert main(["ui", "--auth", "nocolon"]) == 2
    assert "--auth must be USER:PASSWORD" in capsys.readouterr().err
    from facecue.ui import exposure_warning

    assert exposure_warning("127.0.0.1", 7860, None) is None and exposure_warning("::1", 7860, None) is None
    assert exposure_warning("localhost", 7860, None) is None
    assert "no authentication" in exposure_warning("0.0.0.0", 7860, None)
    assert "no authentication" in exposure_warning("myhost.example", 7860, None)
    assert "plain HTTP" in exposure_warning("192.168.1.5", 7860, ("a", "b"))


# --- the page in a browser ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerURL(str):
    """The page's URL, with the --output-dir the server was given."""

    def __new__(cls, url: str, output_dir: Path):
        value = super().__new__(cls, url)
        value.output_dir = output_dir
        return value


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``facecue ui`` in a subprocess; yields its URL."""
    folder = tmp_path_factory.mktemp("ui")
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
               GRADIO_TEMP_DIR=str(folder / "gradio"), GRADIO_ANALYTICS_ENABLED="False")
    log_path = folder / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "facecue.cli", "ui", "--port", str(port), "--output-dir", str(folder / "out")],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"facecue ui exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"facecue ui did not answer within 90 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield ServerURL(url, folder / "out")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; its bundled browsers are not needed)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def speech_clip(tmp_path_factory):
    """The first 2.2 s of the bundled speech."""
    speech = read_audio(asset_path("speech.wav"))[: int(2.2 * 16000)]
    return write_wav(tmp_path_factory.mktemp("speech") / "hello.wav", speech)


def _open(browser, url):
    page = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["microphone"]).new_page()
    outside = []
    page.on("request", lambda request: outside.append(request.url)
            if request.url.startswith(("http:", "https:", "ws:", "wss:")) and not request.url.startswith(url) else None)
    page.goto(url, wait_until="networkidle")
    return page, outside


def _pick(page, elem_id: str, option: str) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).click()
    assert page.input_value(f"#{elem_id} input") == option


PLAYABLE = "id => { const v = document.querySelector(`#${id} video`); " \
    "return v && v.readyState >= 2 && v.duration > 1; }"  # decoded enough to play, and longer than 1 s


def test_page_generates_a_playable_video(server, browser, speech_clip, tmp_path):
    page, outside = _open(browser, server)
    page.set_input_files("#portrait input[type=file]", str(asset_path("portrait.png")))
    page.set_input_files("#audio input[type=file]", str(speech_clip))
    _pick(page, "emotion", "happy")
    page.wait_for_selector("#landmarks_png img", timeout=30_000)  # the detected landmarks, right after upload
    page.click("#generate")
    page.wait_for_function(PLAYABLE, arg="result", timeout=60_000)
    page.wait_for_function(PLAYABLE, arg="landmarks_video", timeout=10_000)
    duration = page.evaluate("document.querySelector('#result video').duration")
    assert duration == pytest.approx(2.2, abs=0.1)
    status = page.inner_text("#status")
    assert "Done" in status and "happy" in status and "55 frames" in status
    assert page.locator(".toast-body.error").count() == 0
    assert outside == [], "the page loads nothing from outside the server"

    # a frame, not the grey box of a video that has not decoded yet (TOOLCHAIN.md, section 5)
    page.evaluate("for (const v of document.querySelectorAll('video')) v.currentTime = 1;")
    page.wait_for_function("Array.from(document.querySelectorAll('video')).every(v => !v.seeking && v.readyState >= 2)")
    page.wait_for_timeout(300)
    shot = Path(os.environ.get("FACECUE_UI_SCREENSHOT") or tmp_path / "ui.png")
    page.screenshot(path=str(shot), full_page=True)
    assert read_image(shot).std() > 20
    page.context.close()


def test_page_shows_facecue_errors(server, browser, speech_clip, tmp_path):
    page, _ = _open(browser, server)
    assert not page.is_visible("#gaze_yaw")
    page.get_by_label("custom", exact=True).check()
    page.wait_for_selector("#gaze_yaw", state="visible")  # custom gaze shows its angles

    wall = write_image(tmp_path / "wall.png", np.full((240, 240, 3), 150, np.uint8))
    page.set_input_files("#portrait input[type=file]", str(wall))
    page.set_input_files("#audio input[type=file]", str(speech_clip))
    page.wait_for_selector(".toast-body.warning", timeout=30_000)  # the upload's landmark check already warns
    page.click("#generate")
    error = page.locator(".toast-body.error")
    error.wait_for(timeout=30_000)
    assert "wall.png: no face found" in error.inner_text()
    assert page.locator("#result video").count() == 0
    page.context.close()


def test_page_records_the_microphone(server, browser):
    page, _ = _open(browser, server)
    page.set_input_files("#portrait input[type=file]", str(asset_path("portrait.png")))
    _pick(page, "emotion", "sad")
    # the upload's check says the portrait smiles broadly (neutral or sad, whichever the check saw)
    info = page.locator(".toast-body.info")
    info.wait_for(timeout=30_000)
    assert "smiles broadly" in info.inner_text()
    _pick(page, "size", "128")
    page.get_by_label(FRAMINGS[1], exact=True).check()
    page.click("#audio button[aria-label='Record audio']")
    page.locator("#audio button.record-button").click()
    page.wait_for_timeout(2500)
    page.locator("#audio button.stop-button").click()
    page.wait_for_selector("#audio [data-testid='download-link']", state="attached", timeout=10_000)  # uploaded
    page.click("#generate")
    page.wait_for_function(PLAYABLE, arg="result", timeout=60_000)
    size = page.evaluate("(() => { const v = document.querySelector('#result video'); "
                         "return [v.videoWidth, v.videoHeight]; })()")
    assert size == [128, 128]
    status = page.inner_text("#status")
    assert "sad" in status and "the portrait smiles broadly" in status  # the job's notes are shown
    page.context.close()


def test_upload_size_is_limited(server):
    boundary = "facecueboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + bytes(int(DEFAULT_MAX_UPLOAD_MB * 1024**2) + 1) \
        + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(server + "gradio_api/upload", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 413


def test_files_beside_the_servers_folder_are_not_served(server):
    """Only the server's own facecue-ui-* folder is downloadable, not the rest of --output-dir."""
    out_dir = Path(server.output_dir)
    secret = out_dir / "secret.txt"
    secret.write_text("the user's own file")
    (ui_folder,) = [p for p in out_dir.iterdir() if p.name.startswith("facecue-ui-")]
    served = ui_folder / "served.txt"
    served.write_text("a job file")
    with urllib.request.urlopen(f"{server}gradio_api/file={served}", timeout=30) as response:
        assert response.read() == b"a job file"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{server}gradio_api/file={secret}", timeout=30)
    assert caught.value.code in (403, 404)


def test_server_listens_on_localhost_only(server):
    port = int(server.rsplit(":", 1)[1].strip("/"))
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].is_file():
        pytest.skip("no /proc/net/tcp on this system")
    listening = set()
    for table in tables:
        for line in table.read_text().splitlines()[1:] if table.is_file() else []:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                listening.add(address)
    assert listening == {"0100007F"}, f"listening on {listening} (hex), expected 127.0.0.1 only"
