#!/usr/bin/env bash
# The page of `emotune serve` in a real browser (`make browser-check`, .ci/run): Debian's headless
# Chromium driven by Selenium through Debian's chromedriver loads the page from a real server,
# uploads examples/face.jpg and checks the mood text, the face box and the track rows against the
# API's own answer, the policy switch, an error shown in words, and a phone-width layout; it saves
# screenshots under BUILD/browser/ (check_page.py).
#   tests/browser/run.sh BUILD_DIR
# Needs PyPI (pip) the first time: selenium goes into a venv cached in BUILD_DIR/browser-venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-nocuda}
[ -x "$build/bin/emotune" ] || { echo "browser-check: $build/bin/emotune not built"; exit 1; }
for b in chromium chromedriver; do
  command -v "$b" >/dev/null || { echo "browser-check: no $b (scripts/install-deps.sh --browser)"; exit 1; }
done
venv="$build/browser-venv"
# Pinned so a rerun tests the same thing; Selenium only speaks WebDriver to the local chromedriver.
reqs="selenium==4.51.0"
if [ ! -f "$venv/.ok" ] || [ "$(cat "$venv/.ok")" != "$reqs" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" || { echo "browser-check: python3 -m venv failed (scripts/install-deps.sh --browser)"; exit 1; }
  "$venv/bin/pip" install -q --disable-pip-version-check $reqs
  echo "$reqs" > "$venv/.ok"
fi
mkdir -p "$build/browser"
# SE_OFFLINE: Selenium Manager must not look for a browser or driver on the internet; both are given.
SE_OFFLINE=true "$venv/bin/python" tests/browser/check_page.py "$build/bin/emotune" "$build/browser"
