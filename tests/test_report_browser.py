"""The report in a real headless Chromium (Debian's ``chromium``): it loads from disk with no
console errors and no network requests, scripts in generations do not run, and a screenshot
shows a non-blank page.

Network requests are caught by pointing Chromium's proxy at a local "canary" server that
records every request it receives (file:// pages bypass proxies; any http/https fetch would
arrive there). A control page with an external image proves the canary catches requests.

Skipped when chromium is not installed: ``apt-get update && apt-get install -y chromium``.
"""

from __future__ import annotations

import shutil
import socketserver
import subprocess
import threading
from pathlib import Path

import pytest
from report_synth import make_run

from lorafair.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed "
                                "(apt-get update && apt-get install -y chromium)")


class _Canary(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self):
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline(2048).decode("latin-1").strip()
        if line:
            self.server.requests.append(line)
        self.wfile.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def run_chromium(page: Path, tmp: Path, *, extra: list[str], proxy_port: int, timeout: int = 120):
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           "--disable-default-apps", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           f"--proxy-server=http://127.0.0.1:{proxy_port}", "--proxy-bypass-list=<-loopback>",
           *extra, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


# Chromium's own background traffic, seen for an empty page too despite the --disable-* flags
# (component updater, network time, account sign-in probe). Not requests made by the page.
BROWSER_HOSTS = ("update.googleapis.com", "clients2.google.com", "accounts.google.com", ".gvt1.com")


def page_requests(lines: list[str]) -> list[str]:
    """Requests the canary saw, less Chromium's own background traffic."""
    def host(line: str) -> str:
        target = line.split(" ")[1] if " " in line else line
        return target.split("://")[-1].split("/")[0].split(":")[0]

    return [ln for ln in lines if not any(host(ln) == h or (h.startswith(".") and host(ln).endswith(h))
                                          for h in BROWSER_HOSTS)]


def console_messages(stderr: str) -> list[str]:
    """Lines Chromium logs for page console output (``CONSOLE(n)`` / ``:CONSOLE:``)."""
    return [ln for ln in stderr.splitlines() if "CONSOLE" in ln]


@pytest.fixture(scope="module")
def canary():
    server = _Canary()
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = make_run(tmp_path_factory.mktemp("browser") / "run", ranks=(1, 8, 64), hostile=True)
    return write_report(root)


def test_canary_catches_requests(tmp_path, canary):
    page = tmp_path / "control.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://example.invalid/x.png">'
                    '<script>console.error("control-error")</script></body></html>')
    before = len(canary.requests)
    res = run_chromium(page, tmp_path, extra=["--dump-dom", "--virtual-time-budget=3000"], proxy_port=canary.server_address[1])
    assert any("example.invalid" in r for r in page_requests(canary.requests[before:])), \
        (canary.requests, res.stderr[-2000:])
    assert any("control-error" in m for m in console_messages(res.stderr)), res.stderr[-2000:]


def test_report_loads_without_errors_or_requests(tmp_path, canary, report):
    before = len(canary.requests)
    res = run_chromium(report["html"], tmp_path, extra=["--dump-dom", "--virtual-time-budget=3000"],
                       proxy_port=canary.server_address[1])
    assert res.returncode == 0, res.stderr[-2000:]
    assert page_requests(canary.requests[before:]) == []
    assert console_messages(res.stderr) == []
    dom = res.stdout
    assert "lorafair report" in dom
    assert dom.count("data:image/png;base64,") == len(report["plots"]) > 10
    # the generation is text: no script or injected img element exists in the DOM
    assert "<script" not in dom.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<img src=\"x\"" not in dom and "<img src=x" not in dom


def test_screenshot_is_non_blank(tmp_path, canary, report):
    shot = tmp_path / "report.png"
    res = run_chromium(report["html"], tmp_path, extra=[f"--screenshot={shot}", "--window-size=1280,2400",
                                                         "--hide-scrollbars"], proxy_port=canary.server_address[1])
    assert shot.is_file() and shot.stat().st_size > 20_000, res.stderr[-2000:]
    from PIL import Image

    im = Image.open(shot).convert("L")
    lo, hi = im.getextrema()
    assert im.size == (1280, 2400) and hi - lo > 100  # text and figures, not an empty page
    assert console_messages(res.stderr) == []
