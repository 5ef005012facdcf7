#!/usr/bin/env bash
# Debian's Chromium for the web page's end-to-end test (tests/test_serve_web.py drives it with
# Playwright's python package; no browser download). Installs only when missing and when
# this is a root shell with apt; otherwise says why the browser test will skip.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    echo "chromium: $(chromium --version 2>/dev/null | head -n1)"
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    echo "chromium: $(chromium --version 2>/dev/null | head -n1)"
else
    echo "chromium not installed (needs root + apt): the browser end-to-end test will be skipped"
fi
