#!/usr/bin/env bash
# What the browser tests (tests/browser, marker `browser`) need on a fresh Debian machine:
# Debian's Chromium and fonts (Latin and CJK titles) and axe-core pinned by package-lock.json.
# Playwright's Python package (its driver only: it drives the system Chromium, no browser
# download) comes with requirements-dev.lock.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core fonts-noto-cjk >/dev/null
fi
if ! command -v npm >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
npm ci --no-audit --no-fund --silent
echo "browser tests ready: $(chromium --version 2>/dev/null || echo chromium)"
