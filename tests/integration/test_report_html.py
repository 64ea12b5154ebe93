"""The HTML report as an admin sees it: headless Chromium renders `gcops report --format html` of six
weeks of nightly runs on three instances; the screenshot (in the test's tmp folder, not committed)
must show two charts with every instance's colour, and the axes must be readable."""
from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from gcops.state.history import SqliteHistory, db_path
from tests.harness.gcops_cli import run_gcops
from tests.unit.test_report import result, run

PIL = pytest.importorskip("PIL.Image")
ImageChops = pytest.importorskip("PIL.ImageChops")
INSTANCES = ("ci-cache", "gitlab-prod", "registry-ha")
HUES = {"ci-cache": (244, 67, 54), "gitlab-prod": (63, 81, 181), "registry-ha": (0, 150, 136)}  # pygal's first three


def nightly_history(state_dir, nights: int = 42) -> None:
    """Nightly runs whose storage grows by day and drops at each GC; figures differ per instance."""
    size = {"ci-cache": 8 << 30, "gitlab-prod": 50 << 30, "registry-ha": 20 << 30}
    start = datetime(2026, 10, 1, 2, 0, tzinfo=timezone.utc)
    for night in range(nights):
        results = []
        for k, name in enumerate(INSTANCES):
            before = size[name] + (300 + 37 * ((night * (k + 3)) % 11)) * (1 << 20)
            reclaimed = (200 + 53 * ((night * (k + 5)) % 13)) * (1 << 20)
            r = result(name, reclaimed)
            r["storage_bytes_before"], r["storage_bytes_after"] = before, before - reclaimed
            size[name] = before - reclaimed
            results.append(r)
        at = start + timedelta(days=night)
        doc = run(f"{at:%Y%m%dT%H%M%SZ}-n{night:02d}", f"{at:%Y-%m-%dT%H:%M:%SZ}", *results)
        doc["finished_at"] = f"{at + timedelta(minutes=12):%Y-%m-%dT%H:%M:%SZ}"
        SqliteHistory(db_path(state_dir)).record_run(doc)


def colour_bands(png, hue) -> list[tuple[int, int, int]]:
    """(top, bottom, width) of each horizontal band of the screenshot holding that series colour
    (drawn at opacity .7 to 1 over white); width: from its leftmost to its rightmost such pixel."""
    image = PIL.open(png).convert("RGB")
    mask = None
    for alpha in (0.7, 0.85, 1.0):
        target = tuple(round(alpha * h + (1 - alpha) * 255) for h in hue)
        diff = ImageChops.difference(image, PIL.new("RGB", image.size, target))
        r, g, b = (channel.point(lambda v: 255 if v < 18 else 0) for channel in diff.split())
        hit = ImageChops.multiply(ImageChops.multiply(r, g), b)
        mask = hit if mask is None else ImageChops.lighter(mask, hit)
    rows = [y for y, v in enumerate(mask.resize((1, image.height), PIL.BOX).tobytes()) if v >= 1]
    bands: list[list[int]] = []
    for y in rows:
        if bands and y - bands[-1][1] <= 25:
            bands[-1][1] = y
        else:
            bands.append([y, y])
    out = []
    for top, bottom in bands:
        box = mask.crop((0, top, image.width, bottom + 1)).getbbox()
        out.append((top, bottom, box[2] - box[0] if box else 0))
    return out


def test_html_report_in_chromium_shows_both_charts_with_readable_axes(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (scripts/install.sh installs it)")
    state = tmp_path / "state"
    nightly_history(state)
    config = tmp_path / "gcops.toml"
    config.write_text(f'[gcops]\nstate_dir = "{state}"\n')
    page = tmp_path / "report.html"
    p = run_gcops("report", "--format", "html", "-o", str(page), "--config", str(config))
    assert p.returncode == 0, p.stderr
    html = page.read_text()

    # axes: distinct, readable time labels (not six identical ones), several y ticks in bytes
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.DOTALL)
    assert len(svgs) == 2
    for svg in svgs:
        x_axis = re.search(r'<g class="axis x.*?</g>\s*</g>', svg, flags=re.DOTALL).group()
        labels = [t for t in re.findall(r"<text[^>]*>([^<]+)</text>", x_axis)]
        assert 4 <= len(labels) <= 14 and len(set(labels)) == len(labels), labels
        assert all(re.fullmatch(r"(Oct|Nov) \d\d", label) for label in labels), labels
        y_axis = re.search(r'<g class="axis y.*?</g>\s*</g>', svg, flags=re.DOTALL).group()
        ticks = re.findall(r"<text[^>]*>([^<]+)</text>", y_axis)
        assert len(set(ticks)) >= 3 and all(t.endswith(("GiB", "MiB", " B")) for t in ticks), ticks

    shot = tmp_path / "report.png"
    render = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             "--window-size=1100,1000", f"--screenshot={shot}", page.as_uri()],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert render.returncode == 0 and shot.exists(), render.stderr[-2000:]
    print(f"screenshot: {shot}")
    for name in INSTANCES:
        bands = colour_bands(shot, HUES[name])
        # across the plot (not a legend square): the bars of the first chart, the line of the second
        wide = [band for band in bands if band[2] > 600]
        assert len(wide) >= 2, (name, bands)
        assert wide[0][1] - wide[0][0] > 60, (name, bands)  # bars have height
