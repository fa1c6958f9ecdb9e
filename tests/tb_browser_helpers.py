"""A real TensorBoard process and a headless Chromium, for the browser tests and benchmarks/tb_latency.py.

Both follow one recipe: read the port from TensorBoard's stderr and keep draining it (a full pipe
blocks TensorBoard), stop it by PID, and launch the Chromium found on PATH with flags that keep it
from calling home, so the "no other origin" check sees only the page.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
_URL_RE = re.compile(r"TensorBoard \S+ at (http://\S+?)/? ")


def find_browser() -> str | None:
    """The first of BROWSER_NAMES on PATH (Debian's package is ``chromium``), or None."""
    return next((path for path in map(shutil.which, BROWSER_NAMES) if path), None)


@contextmanager
def tensorboard(logdir: str | Path, *extra: str, timeout_s: float = 60) -> Iterator[str]:
    """Run ``tensorboard --logdir LOGDIR --host 127.0.0.1 --port 0``; yield its base URL (no trailing /)."""
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0",
           *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            m = _URL_RE.search(line + " ")
            if m and not url:
                url.append(m.group(1).rstrip("/"))
                found.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        deadline = time.monotonic() + timeout_s
        while not found.wait(0.1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("tensorboard did not start:\n" + "".join(lines[-40:]))
        yield url[0]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def chromium_page(viewport: tuple[int, int] = (1500, 950)) -> Iterator[tuple[Any, list[str]]]:
    """A Playwright page in headless Chromium, plus the list of every URL the page requested."""
    from playwright.sync_api import sync_playwright

    executable = find_browser()
    if executable is None:
        raise RuntimeError(f"no browser on PATH: install one of {', '.join(BROWSER_NAMES)}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            yield page, requests
        finally:
            browser.close()


def plugin_frame(page: Any, timeout_ms: int = 30_000) -> Any:
    """The gprof tab's iframe, once its page has set ``body[data-ready]``."""
    page.wait_for_selector("iframe", timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        for frame in page.frames:
            if "plugin_entry.html?name=gprof" in frame.url:
                frame.wait_for_selector("body[data-ready='1']", timeout=timeout_ms)
                return frame
        page.wait_for_timeout(100)
    raise TimeoutError("the gprof tab's iframe never appeared")


# Raw field names and numbers without a unit, as the tab must never show them: `est_time_saved_ns`,
# `0.773585`, `2863902` (large integers need separators or a unit; shapes and node numbers are exempt).
_UNREADABLE = re.compile(r"\b[a-z][a-z0-9_.]*_(?:ns|bytes|bps)\b|\b\d+\.\d{4,}\b|(?<![\w#.,\[/:-])\d{5,}(?![\w\],])")


def unreadable(text: str) -> list[str]:
    """The raw field names and unit-less numbers in a page's visible text (empty when it reads well)."""
    return sorted({m.group(0) for m in _UNREADABLE.finditer(text)})


def open_tab(page: Any, url: str, state: str = "", timeout_ms: int = 30_000) -> Any:
    """Open TensorBoard's gprof tab with the tab's saved state set to ``state`` (a URL-hash string such
    as ``view=graph&run=mlp``; empty: the defaults), and return its iframe once ready."""
    page.goto(url + "/data/plugins_listing")  # same origin: the tab reads its saved state from sessionStorage
    page.evaluate("s => s ? sessionStorage.setItem('gprof-tab-state', s) : sessionStorage.clear()", state)
    page.goto(url + "/#gprof")
    return plugin_frame(page, timeout_ms)
