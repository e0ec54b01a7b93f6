"""Open a page in headless Chromium through ChromeDriver (W3C WebDriver over loopback HTTP).

A small client on the standard library, enough for the report's browser test: load a
page, read the browser console, run a script, measure elements, take screenshots.
Chromium starts with the flags this machine's closed network needs and a fresh profile.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1280,900")
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # the W3C web element identifier
START_TIMEOUT_S = 30.0
VISIBLE_BOXES_JS = """
return Array.from(document.querySelectorAll(arguments[0])).filter(function (el) {
  var style = window.getComputedStyle(el), box = el.getBoundingClientRect();
  return box.width > 0 && box.height > 0 && style.visibility !== 'hidden' && style.display !== 'none'
      && parseFloat(style.opacity) > 0;
}).map(function (el) {
  var box = el.getBoundingClientRect();
  return {top: box.top + window.scrollY, left: box.left, width: box.width, height: box.height};
});
"""


class BrowserError(RuntimeError):
    pass


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, from $CHROMIUM / $CHROMEDRIVER or PATH; None if absent."""
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    """``with Browser(chromium, chromedriver) as b: b.open(path); b.console_errors()``."""

    def __init__(self, chromium: str, chromedriver: str) -> None:
        self.chromium, self.chromedriver = chromium, chromedriver
        self.profile = tempfile.TemporaryDirectory(prefix="awq-report-chromium-")
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.driver: subprocess.Popen | None = None
        self.session: str | None = None

    def __enter__(self) -> "Browser":
        self.driver = subprocess.Popen([self.chromedriver, f"--port={self.port}", "--allowed-ips=127.0.0.1"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._wait_until_ready()
            self.session = self._new_session()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.session:
            self._call("DELETE", f"/session/{self.session}", ignore_errors=True)
            self.session = None
        if self.driver and self.driver.poll() is None:
            self.driver.terminate()
            self.driver.wait(timeout=10)
        self.profile.cleanup()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.driver.poll() is not None:
                raise BrowserError(f"chromedriver exited with status {self.driver.returncode}")
            try:
                if self._call("GET", "/status").get("ready"):
                    return
            except (OSError, BrowserError):
                pass
            time.sleep(0.1)
        raise BrowserError(f"chromedriver did not answer on port {self.port} within {START_TIMEOUT_S:.0f} s")

    def _new_session(self) -> str:
        options = {"binary": self.chromium, "args": [*CHROMIUM_FLAGS, f"--user-data-dir={self.profile.name}"]}
        capabilities = {"browserName": "chrome", "goog:chromeOptions": options,
                        "goog:loggingPrefs": {"browser": "ALL"}}
        return self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None, ignore_errors: bool = False) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"{}").get("value")
        except urllib.error.HTTPError as err:
            if ignore_errors:
                return None
            raise BrowserError(f"WebDriver {method} {path}: {err.read().decode(errors='replace')[:300]}") from None

    def _session_call(self, method: str, path: str, body: dict | None = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, page: str | os.PathLike) -> None:
        self._session_call("POST", "/url", {"url": Path(page).resolve().as_uri()})

    def console_entries(self) -> list[dict[str, Any]]:
        return self._session_call("POST", "/se/log", {"type": "browser"}) or []

    def console_errors(self) -> list[str]:
        return [entry["message"] for entry in self.console_entries() if entry.get("level") == "SEVERE"]

    def run_script(self, script: str, *args: Any) -> Any:
        return self._session_call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def visible_elements(self, css: str) -> list[dict[str, float]]:
        """Boxes of the elements matching ``css`` that a person could see (size > 0, not hidden)."""
        return self.run_script(VISIBLE_BOXES_JS, css)

    def find(self, css: str) -> str:
        return self._session_call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT_KEY]

    def screenshot(self, path: str | os.PathLike, full_page: bool = True) -> Path:
        if full_page:
            height = self.run_script("return document.documentElement.scrollHeight;")
            self._session_call("POST", "/window/rect", {"width": 1280, "height": min(int(height) + 40, 16000)})
        return _save_png(path, self._session_call("GET", "/screenshot"))

    def element_screenshot(self, css: str, path: str | os.PathLike) -> Path:
        return _save_png(path, self._session_call("GET", f"/element/{self.find(css)}/screenshot"))


def _save_png(path: str | os.PathLike, encoded: str) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(base64.b64decode(encoded))
    return target
