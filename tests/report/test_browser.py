"""The rendered report in headless Chromium (Debian's package), at 1280x900: loads from a file URL with no network
request and no console error; this run's headline comparison and its sample grids start in the first screen; with
every <details> opened, every image, chart and table has a non-zero size and no two text elements of a chart overlap
or leave it; a screenshot is taken.

Talks to the browser over the DevTools protocol on a pipe (--remote-debugging-pipe: fd 3 in, fd 4 out,
NUL-terminated JSON), so no extra package is needed.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = (1280, 900)  # the first screen of a laptop browser window
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="install Debian's chromium (apt-get install chromium) to run the browser check")


class Pipe:
    def __init__(self, user_dir: Path):
        r_in, self.w = os.pipe()   # we write commands -> chromium reads fd 3
        self.r, w_out = os.pipe()  # chromium writes fd 4 -> we read
        r_in, w_out = (self._above_4(fd) for fd in (r_in, w_out))  # in a bare process os.pipe() gives 3 and 4 ...
        # ... and the shell moves our pipe ends to fds 3 and 4 after fork/exec, where nothing of Popen's can collide.
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$0" "$@" 3<&{r_in} 4>&{w_out} {r_in}<&- {w_out}>&-', CHROMIUM,
             "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
             "--disable-default-apps", "--mute-audio", f"--user-data-dir={user_dir}", "--remote-debugging-pipe",
             f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}"],
            pass_fds=(r_in, w_out), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(r_in)
        os.close(w_out)
        self.buf, self.next_id, self.events = b"", 0, []

    @staticmethod
    def _above_4(fd: int) -> int:
        """`fd`, moved to a number above 4 when it is not (so redirecting 3 and 4 cannot close it first)."""
        if fd > 4:
            return fd
        high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
        os.close(fd)
        return high

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self._read()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)
        raise TimeoutError(method)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == method for e in self.events):
                return next(e for e in self.events if e.get("method") == method)
            self.events.append(self._read())
        raise TimeoutError(method)

    def _read(self) -> dict:
        while b"\0" not in self.buf:
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self.w)
        os.close(self.r)


# Where the first screen's elements are, before anything is scrolled or opened.
FIRST_SCREEN_JS = """JSON.stringify({viewport: window.innerHeight, elements: Object.fromEntries(
  ['headline', 'first-samples', 'run-models'].map(id => {
    const e = document.getElementById(id);
    if (!e) return [id, null];
    const r = e.getBoundingClientRect();
    return [id, {top: r.top, bottom: r.bottom, h: r.height}];
  }))})"""

# Every <details> opened (a collapsed table has no size), then: the size of every image, chart and table, and per
# chart the text elements that overlap one another or stick out of the chart.
LAYOUT_JS = """(() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  const sizes = Array.from(document.querySelectorAll('img, svg, table')).map(e => {
    const r = e.getBoundingClientRect();
    return {tag: e.tagName.toLowerCase(), w: r.width, h: r.height,
            complete: e.tagName !== 'IMG' || (e.complete && e.naturalWidth > 0)};
  });
  const clashes = [];
  let texts = 0;
  document.querySelectorAll('svg').forEach((svg, i) => {
    const box = svg.getBoundingClientRect();
    const items = Array.from(svg.querySelectorAll('text')).filter(t => t.textContent.trim())
      .map(t => ({text: t.textContent, r: t.getBoundingClientRect()}));
    texts += items.length;
    const title = (svg.querySelector('title') || {}).textContent;
    for (const a of items) {
      if (a.r.left < box.left - 1 || a.r.right > box.right + 1 || a.r.top < box.top - 1 || a.r.bottom > box.bottom + 1)
        clashes.push({chart: i, title, outside: a.text});
    }
    for (let j = 0; j < items.length; j++) for (let k = j + 1; k < items.length; k++) {
      const a = items[j].r, b = items[k].r;
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 1 && h > 1) clashes.push({chart: i, title, overlap: [items[j].text, items[k].text]});
    }
  });
  return JSON.stringify({sizes, clashes, texts});
})()"""


def inspect_page(html_path: Path, tmp: Path) -> dict:
    pipe = Pipe(tmp / "chromium-profile")
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Emulation.setDeviceMetricsOverride", {"width": VIEWPORT[0], "height": VIEWPORT[1],
                                                          "deviceScaleFactor": 1, "mobile": False}, session=session)
        pipe.events.clear()
        url = html_path.resolve().as_uri()
        pipe.send("Page.navigate", {"url": url}, session=session)
        pipe.wait_event("Page.loadEventFired")
        first = json.loads(pipe.send("Runtime.evaluate", {"expression": FIRST_SCREEN_JS, "returnByValue": True},
                                     session=session)["result"]["value"])
        layout = json.loads(pipe.send("Runtime.evaluate", {"expression": LAYOUT_JS, "returnByValue": True},
                                      session=session)["result"]["value"])
        shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                         session=session)["data"]
        time.sleep(0.2)
        pipe.send("Runtime.evaluate", {"expression": "1"}, session=session)  # drain late events
    finally:
        pipe.close()
    ev = pipe.events
    requests = [e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"]
    errors = [e["params"] for e in ev if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error")
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")]
    png = base64.b64decode(shot)
    (tmp / "screenshot.png").write_bytes(png)
    return {"url": url, "requests": requests, "errors": errors, "first": first, "sizes": layout["sizes"],
            "clashes": layout["clashes"], "texts": layout["texts"], "png": png}


def check_report_page(result: dict, min_imgs: int, min_svgs: int, min_tables: int) -> None:
    """What a reader of the report needs of the page (shared with tests/test_pipeline.py, on a real run)."""
    external = [u for u in result["requests"] if u != result["url"] and not u.startswith("data:")]
    assert external == [], f"the report made network requests: {external}"
    assert result["errors"] == [], f"console errors: {result['errors']}"
    # the first screen: this run's headline comparison whole, its sample grids starting, nothing scrolled
    first = result["first"]
    assert first["viewport"] == VIEWPORT[1]
    head, grids = first["elements"]["headline"], first["elements"]["first-samples"]
    assert head and head["h"] > 0 and head["bottom"] <= first["viewport"], first
    assert grids and grids["h"] > 0 and grids["top"] < first["viewport"], first
    counts = {t: sum(s["tag"] == t for s in result["sizes"]) for t in ("img", "svg", "table")}
    assert counts["img"] >= min_imgs and counts["svg"] >= min_svgs and counts["table"] >= min_tables, counts
    assert all(s["w"] > 0 and s["h"] > 0 and s["complete"] for s in result["sizes"]), result["sizes"]
    assert result["texts"] > 10 * min_svgs and result["clashes"] == [], result["clashes"]
    png = result["png"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    import io

    from PIL import Image
    im = Image.open(io.BytesIO(png))
    assert im.width >= 1000 and im.height > 1600  # captureBeyondViewport: the whole page, not a blank viewport
    import numpy as np

    assert len(np.unique(np.asarray(im.convert("L").resize((64, 64))))) > 8  # not a single-colour page


def test_complete_report_in_chromium(complete_report: Path, tmp_path: Path):
    result = inspect_page(complete_report, tmp_path)
    # images: the real crops and 3 models' grids, in the first screen and in full; charts: convergence (ours, the
    # paper's), DCT energy, training and sampling throughput of this run and of the recording; tables: the run, the
    # headline, the pairs, the paper's tables (collapsed at this scale), the ablations, bench, provenance ...
    check_report_page(result, min_imgs=8, min_svgs=7, min_tables=15)


def test_the_checks_can_fail(complete_report: Path, tmp_path: Path):
    """A page that fetches something is caught (blocked by the CSP, logged as an error); overlapping chart labels,
    a label outside its chart and a headline below the first screen are caught."""
    html = complete_report.read_text()
    clash = ('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><text x="10" y="20">overlapping one'
             '</text><text x="14" y="22">overlapping two</text><text x="190" y="30">outside</text></svg>')
    spacer = '<div style="height: 1200px">spacer</div>'
    bad = tmp_path / "bad.html"
    bad.write_text(html.replace('<section id="this-run">', spacer + '<section id="this-run">', 1)
                   .replace("</body>", f'<img src="http://example.invalid/x.png">{clash}</body>'))
    result = inspect_page(bad, tmp_path)
    assert result["errors"] or any("example.invalid" in u for u in result["requests"])
    assert {"overlap": ["overlapping one", "overlapping two"]}.items() <= result["clashes"][0].items() or any(
        c.get("overlap") == ["overlapping one", "overlapping two"] for c in result["clashes"])
    assert any(c.get("outside") == "outside" for c in result["clashes"])
    assert result["first"]["elements"]["headline"]["top"] > result["first"]["viewport"]
