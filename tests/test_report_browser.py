"""The HTML report in a real browser: headless Chromium loads the page, logs no console
message, fetches nothing, and draws every figure with a non-zero size; a screenshot is
taken. Skipped without Chromium, except in CI (CI=true), where a missing browser fails:
.ci/run installs it.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import pytest
from report_results import study
from typer.testing import CliRunner

from sslinv.cli.main import app
from sslinv.transforms import FAMILIES

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Appended to a copy of the page (the page itself has no script): measures each figure
# and lists every resource the page fetched, into an element that --dump-dom prints.
PROBE = """<pre id="probe"></pre><script>
const figs = [...document.querySelectorAll("figure.fig")].map(f => {
  const s = f.querySelector("svg"), r = s ? s.getBoundingClientRect() : {width: 0, height: 0};
  return [f.id, r.width, r.height];
});
const fetched = performance.getEntriesByType("resource").map(e => e.name);
document.getElementById("probe").textContent = JSON.stringify({figs, fetched});
</script>"""


def _browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but no Chromium found: .ci/run installs it (apt-get install -y chromium)")
    pytest.skip("needs headless Chromium (apt-get install chromium)")


def _run(browser: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-extensions", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


def test_page_renders_in_headless_chromium(tmp_path):
    browser = _browser()
    results = study(tmp_path / "cache", {"demo-default": 0.8, "demo-ventral": 0.9, "demo-dorsal": 0.6},
                    list(FAMILIES.names()),
                    {"demo-classes": {"demo-default": 0.5, "demo-ventral": 0.4, "demo-dorsal": 0.3}},
                    {"demo-viewpoint": {"demo-default": 0.5, "demo-ventral": 0.6, "demo-dorsal": 0.55}})
    page = tmp_path / "report.html"
    res = CliRunner().invoke(app, ["report", "--results", str(results), "--html", str(page)], prog_name="sslinv")
    assert res.exit_code == 0, res.stderr
    expected = len(re.findall(r'<figure class="fig"', page.read_text()))
    assert expected >= 3 + 18 + 2  # profiles, curves, correlation matrices and scatter plots

    # The page as it is: no console message at all (it has no script), and a screenshot.
    shot = tmp_path / "report.png"
    run = _run(browser, "--window-size=1280,2400", f"--screenshot={shot}", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 2400)
        colours = im.convert("RGB").resize((64, 120)).getcolors(64 * 120)
        assert colours is not None and len(colours) > 20  # drawn, not a blank page

    # A probed copy: every figure has a size, and nothing was fetched.
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</main>", "</main>" + PROBE))
    run = _run(browser, "--window-size=1280,2400", "--dump-dom", probed.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    m = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, flags=re.DOTALL)
    assert m, run.stdout[-2000:]
    probe = json.loads(html.unescape(m.group(1)))
    assert len(probe["figs"]) == expected
    empty = [name for name, w, h in probe["figs"] if not (w > 0 and h > 0)]
    assert empty == []
    assert probe["fetched"] == []
