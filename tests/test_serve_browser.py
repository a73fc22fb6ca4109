"""The viewer of `e2r serve` in a real browser: Playwright driving Debian's headless Chromium.

Playwright's own browser download cannot work on the CI machine, so the test launches
/usr/bin/chromium (`.ci/run` installs the Debian package when it is missing) and skips with the
reason when that binary or the `playwright` package is absent.

Run as a script, the same steps take the README's screenshot against a running server:

    python tests/test_serve_browser.py --url http://127.0.0.1:8000 --ecg REC.hea --out docs/viewer.png
"""

from __future__ import annotations

import argparse
import io
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]
ALL_PREVIEWS_SHOWN = """() => {
  const imgs = [...document.querySelectorAll('#neighbours img.preview')];
  return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
}"""


def search_in_viewer(page, url: str, ecg_files: list[Path], top_k: int | None = None,
                     timeout_ms: int = 60_000) -> dict[str, bytes]:
    """Open the viewer, upload the ECG, wait for the cards and their playing previews.

    Returns the preview responses' bodies by URL (to check that they are animated).
    """
    previews: dict[str, bytes] = {}

    def keep(response) -> None:
        if response.url.endswith("/preview") and response.ok:
            previews[response.url] = response.body()

    page.on("response", keep)
    page.goto(url)
    page.wait_for_function("() => document.getElementById('stats').textContent.includes('studies')", timeout=timeout_ms)
    if top_k is not None:
        page.fill("#top-k", str(top_k))
    page.set_input_files("#files", [str(p) for p in ecg_files])  # the change event starts the search
    page.wait_for_selector("#neighbours .card", timeout=timeout_ms)
    page.wait_for_function(ALL_PREVIEWS_SHOWN, timeout=timeout_ms)
    page.wait_for_selector("#est-lvef", timeout=timeout_ms)
    deadline = time.time() + 10
    n_imgs = page.locator("#neighbours img.preview").count()
    while len(previews) < n_imgs and time.time() < deadline:  # response bodies arrive just after the images
        page.wait_for_timeout(100)
    return previews


def _launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(tiny_cohort, tiny_bundle, tmp_path_factory):
    """`e2r serve`'s app on a free loopback port (uvicorn in a thread) over an index of the tiny cohort."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does it)")
    pytest.importorskip("playwright.sync_api", reason="playwright is missing: pip install -e '.[test]'")
    import uvicorn
    from typer.testing import CliRunner

    from e2r.cli import app as cli_app
    from e2r.store import open_store
    from queries.search import Searcher
    from queries.serve import ServeConfig, create_app

    root = tmp_path_factory.mktemp("serve_browser")
    home = root / "home"
    result = CliRunner().invoke(cli_app, ["index", str(tiny_cohort / "echo"), "--model", str(tiny_bundle),
                                          "--data-dir", str(home), "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    store = open_store(home)
    app = create_app(ServeConfig(collection="echo_studies", cache_dir=root / "previews",
                                 archive_root=tiny_cohort / "echo", synthetic=True), Searcher(store, "echo_studies"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/", tiny_cohort
    server.should_exit = True
    thread.join(10)
    store.close()


@pytest.mark.slow
def test_viewer_shows_ecg_estimate_and_playing_loops(live_server, tmp_path):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    url, cohort = live_server
    with sync_playwright() as pw:
        browser = _launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            previews = search_in_viewer(page, url, [cohort / "ecg" / "p0000.hea", cohort / "ecg" / "p0000.dat"])
            cards = page.locator("#neighbours .card")
            assert cards.count() == 6  # the viewer's default top-k
            assert "%" in page.locator("#est-lvef").inner_text()
            assert page.locator("#est-le45").inner_text().endswith("%")
            assert page.locator("#est-lvh").inner_text().endswith("%")
            assert page.locator("#synthetic-banner").is_visible()
            assert "p0000.hea" in page.locator("#ecg-title").inner_text()
            assert page.locator("#error").is_hidden()
            widths = page.eval_on_selector_all("#neighbours img.preview", "imgs => imgs.map((i) => i.naturalWidth)")
            assert widths and all(w > 0 for w in widths)
            assert previews, "no preview image was fetched"
            for body in previews.values():
                img = Image.open(io.BytesIO(body))
                assert img.format in ("WEBP", "GIF") and img.n_frames > 1  # a playing loop, not a still
            # The ECG canvas has ink on it (the traces), not just the grid's colours.
            dark = page.evaluate("""() => { const c = document.getElementById('ecg');
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
              for (let i = 0; i < d.length; i += 4) if (d[i] < 60 && d[i + 1] < 60 && d[i + 2] < 60) n++; return n; }""")
            assert dark > 2000
            shot = tmp_path / "viewer.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            assert not errors, errors
        finally:
            browser.close()


def main() -> None:
    """Screenshot the viewer of a running `e2r serve` after searching one ECG."""
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--url", default="http://127.0.0.1:8000/")
    ap.add_argument("--ecg", type=Path, required=True, help="WFDB .hea (its .dat/.mat beside it) or DICOM ECG")
    ap.add_argument("--out", type=Path, default=Path("viewer.png"))
    ap.add_argument("--top-k", type=int, default=6)
    args = ap.parse_args()
    files = [args.ecg] + sorted(p for p in args.ecg.parent.glob(args.ecg.stem + ".*")
                                if p.suffix in (".dat", ".mat") and args.ecg.suffix == ".hea")
    with sync_playwright() as pw:
        browser = _launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        search_in_viewer(page, args.url, files, top_k=args.top_k)
        page.wait_for_timeout(800)  # let the loops play a little
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
