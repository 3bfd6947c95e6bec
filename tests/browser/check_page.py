#!/usr/bin/env python3
"""The page of `emotune serve` in headless Chromium (tests/browser/run.sh, `make browser-check`).

  check_page.py EMOTUNE_BINARY OUT_DIR

Starts `emotune serve --port 0` (the port is read from its first line), then, in the browser:
  1. loads the page, uploads examples/face.jpg through the file input;
  2. waits for the result and checks the mood text, the face box (one, inside the photo, numbered)
     and the track rows against the API's own /api/v1/recommend answer for the same bytes;
     presses the face's "Where it looked" toggle and waits for its Grad-CAM picture (then hides it);
  3. flips the policy switch to uplift and checks the rows follow the uplift answer;
  4. uploads a file that is not an image and checks the error is shown in words;
  5. narrows the window to a phone's width (390 px) and checks nothing overflows sideways.
Screenshots: OUT_DIR/serve-result.png (1280 px wide), serve-explain.png and serve-phone.png (390 px).
Exit status 0 when every check holds; 1 with the failed check named otherwise.
"""
import json
import math
import os
import subprocess
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FACE = os.path.join(ROOT, "examples", "face.jpg")
NOT_IMAGE = os.path.join(ROOT, "tests", "data", "app", "not_an_image.jpg")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def start_server(binary):
    proc = subprocess.Popen([binary, "serve", "--port", "0", "--workers", "1", "--quiet"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()  # "emotune serve: http://127.0.0.1:PORT/ (...)"
    if "http://" not in line:
        proc.kill()
        sys.exit("browser-check: the server did not start: " + line + proc.stderr.read())
    url = line.split("http://", 1)[1].split()[0]
    return proc, "http://" + url


def api_recommend(base, query):
    with open(FACE, "rb") as f:
        body = f.read()
    req = urllib.request.Request(base + "api/v1/recommend?" + query, data=body,
                                 headers={"Content-Type": "image/jpeg"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def main():
    binary, out = sys.argv[1], sys.argv[2]
    t0 = time.time()
    proc, base = start_server(binary)
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,1500", "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(base)
        check("emotune" in driver.title, "the page loads (title: %r)" % driver.title)

        # 1-2. Upload, wait, compare with the API.
        want = api_recommend(base, "top=8&policy=match")
        driver.find_element(By.ID, "file").send_keys(FACE)
        wait.until(lambda d: d.find_element(By.ID, "results").is_displayed()
                   and d.find_element(By.ID, "mood-text").text)
        mood = driver.find_element(By.ID, "mood-text").text
        # Math.round in the page: halves round up (Python's round() would round them to even).
        want_mood = "%s %d%%" % (want["mood"]["top"]["class"],
                                 math.floor(100 * want["mood"]["top"]["probability"] + 0.5))
        check(mood == want_mood, "mood text %r is the API's %r" % (mood, want_mood))
        boxes = driver.find_elements(By.CSS_SELECTOR, "#photo-wrap .face-box")
        check(len(boxes) == 1, "one face box (found %d)" % len(boxes))
        if boxes:
            photo = driver.find_element(By.ID, "photo").rect
            b = boxes[0].rect
            inside = (b["width"] > 20 and b["height"] > 20 and b["x"] >= photo["x"] - 4 and
                      b["y"] >= photo["y"] - 4 and b["x"] + b["width"] <= photo["x"] + photo["width"] + 4 and
                      b["y"] + b["height"] <= photo["y"] + photo["height"] + 4)
            check(inside, "the face box %s lies inside the photo %s" % (b, photo))
            check("1" in boxes[0].text, "the face box is numbered (%r)" % boxes[0].text)
            # The box is where the API says, in the photo's displayed scale.
            img_w = driver.execute_script("return document.getElementById('photo').naturalWidth")
            scale = photo["width"] / img_w
            check(abs(b["x"] - photo["x"] - want["face"]["box"]["x"] * scale) < 6,
                  "the box's left edge matches the API's x=%d" % want["face"]["box"]["x"])
        rows = driver.find_elements(By.CSS_SELECTOR, "#tracks tr.track-row")
        check(len(rows) == 8, "8 track rows (found %d)" % len(rows))
        if rows:
            cells = rows[0].find_elements(By.TAG_NAME, "td")
            check(cells[1].text == want["tracks"][0]["artist"] and cells[2].text == want["tracks"][0]["title"],
                  "first row %r - %r is the API's first track" % (cells[1].text, cells[2].text))
        bars = driver.find_elements(By.CSS_SELECTOR, ".face-card .bar-row")
        check(len(bars) == 7, "7 probability bars (found %d)" % len(bars))
        dots = driver.find_elements(By.CSS_SELECTOR, "#plane .track-dot")
        check(len(dots) == 8, "8 tracks on the valence/energy plane (found %d)" % len(dots))
        driver.save_screenshot(os.path.join(out, "serve-result.png"))

        # 2b. Where it looked: the face's toggle shows its Grad-CAM picture, a second press hides it.
        toggle = driver.find_element(By.CSS_SELECTOR, ".face-card .explain-toggle")
        toggle.click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".face-card .explain-img").is_displayed()
                   and d.execute_script("return document.querySelector('.face-card .explain-img').naturalWidth") > 0)
        src = driver.find_element(By.CSS_SELECTOR, ".face-card .explain-img").get_attribute("src")
        check(src.startswith("data:image/png;base64,"), "the overlay is the API's PNG (%r...)" % src[:30])
        check(toggle.get_attribute("aria-pressed") == "true", "the toggle reads pressed")
        driver.save_screenshot(os.path.join(out, "serve-explain.png"))
        toggle.click()
        check(not driver.find_element(By.CSS_SELECTOR, ".face-card .explain-img").is_displayed(),
              "a second press hides the overlay")

        # 3. The policy switch.
        want_up = api_recommend(base, "top=8&policy=uplift")
        driver.find_element(By.CSS_SELECTOR, "label[for=policy-uplift]").click()
        wait.until(lambda d: "uplift" in d.find_element(By.ID, "status").text)
        first = driver.find_elements(By.CSS_SELECTOR, "#tracks tr.track-row td")[1].text
        check(first == want_up["tracks"][0]["artist"], "uplift: first artist %r is the API's" % first)

        # 4. An error in words.
        driver.find_element(By.ID, "file").send_keys(NOT_IMAGE)
        wait.until(lambda d: "error" in d.find_element(By.ID, "status").get_attribute("class"))
        status = driver.find_element(By.ID, "status").text
        check("not an image" in status, "a non-image is refused in words: %r" % status)

        # 5. Phone width: upload again, no sideways overflow, screenshot.
        driver.set_window_size(390, 1700)
        driver.find_element(By.ID, "file").send_keys(FACE)
        wait.until(lambda d: d.find_element(By.ID, "results").is_displayed()
                   and not d.find_element(By.ID, "status").get_attribute("class").endswith("busy"))
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        check(overflow <= 0, "nothing overflows a 390 px window (by %d px)" % overflow)
        driver.save_screenshot(os.path.join(out, "serve-phone.png"))
    finally:
        driver.quit()
        proc.terminate()
        code = proc.wait(timeout=30)
    check(code == 0, "the server stops cleanly on SIGTERM (exit %d)" % code)
    print("browser-check: %d checks failed, %.1f s (screenshots in %s)" % (len(failures), time.time() - t0, out))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
