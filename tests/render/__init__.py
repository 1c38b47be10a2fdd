"""Render tier: the privacy officer's report in headless Chromium (scripts/ensure_chromium.sh)."""
