"""`e2r serve`: every endpoint through the framework's test client, success and failure.

One tiny index (the session's tiny cohort, indexed once with the untrained tiny bundle) serves
every test; apps with other settings (API key, upload cap, no archive) reuse its Searcher.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from e2r.cli import app as cli_app

pytest.importorskip("fastapi", reason="e2r serve needs fastapi (pip install -e '.[test]')")
from fastapi.testclient import TestClient  # noqa: E402

runner = CliRunner()
KEY = "test-key-0123456789"


@pytest.fixture(scope="module")
def served(tiny_cohort, tiny_bundle, tmp_path_factory):
    """(make_client(**config overrides), cohort root, CLI JSON of one search, CLI line for a bad ECG)."""
    from e2r.store import open_store
    from queries.search import Searcher
    from queries.serve import ServeConfig, create_app

    root = tmp_path_factory.mktemp("serve")
    home = root / "home"
    result = runner.invoke(cli_app, ["index", str(tiny_cohort / "echo"), "--model", str(tiny_bundle),
                                     "--data-dir", str(home), "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    # The CLI's answers, taken before the server holds the store (one process per embedded store).
    cli = runner.invoke(cli_app, ["search", str(tiny_cohort / "ecg" / "p0000.hea"), "--data-dir", str(home),
                                  "--top-k", "5", "--k", "10", "--json"])
    assert cli.exit_code == 0, cli.output
    bad = root / "bad"
    bad.mkdir()
    (bad / "broken.hea").write_text("this is not a WFDB header\n")
    cli_bad = runner.invoke(cli_app, ["search", str(bad / "broken.hea"), "--data-dir", str(home)])
    assert cli_bad.exit_code == 1
    store = open_store(home)
    searcher = Searcher(store, "echo_studies")

    def make_client(**overrides) -> TestClient:
        cfg = {"collection": "echo_studies", "cache_dir": root / "previews", "archive_root": tiny_cohort / "echo",
               "examples_dir": tiny_cohort / "ecg", **overrides}
        return TestClient(create_app(ServeConfig(**cfg), searcher))

    yield make_client, tiny_cohort, json.loads(cli.stdout), cli_bad.stderr.strip(), bad
    store.close()


@pytest.fixture(scope="module")
def client(served) -> TestClient:
    return served[0]()


def _wfdb_files(cohort: Path, name: str = "p0000") -> list[tuple[str, tuple[str, bytes, str]]]:
    folder = cohort / "ecg"
    return [("files", (f"{name}{ext}", (folder / f"{name}{ext}").read_bytes(), "application/octet-stream"))
            for ext in (".hea", ".dat")]


def _strip_timings(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "timings_ms"} | {"ecg": {**doc["ecg"], "path": None}}


# -- health, stats, OpenAPI, viewer --------------------------------------------------------------
def test_health_stats_and_openapi(client):
    assert client.get("/v1/health").json() == {"status": "ok"}
    stats = client.get("/v1/stats").json()
    assert stats["collection"] == "echo_studies" and stats["points"] == 12
    assert len(stats["model_hash"]) > 8 and stats["uptime_s"] >= 0 and stats["synthetic"] is False
    assert stats["ecg_preprocess"] == "100 Hz x 10 s, clip quantile, baseline als, normalise mv_softclip (1 mV/unit, soft limit 5 mV)"
    paths = client.get("/v1/openapi.json").json()["paths"]
    for path in ("/v1/search", "/v1/studies/{study_uid}", "/v1/studies/{study_uid}/videos/{n}/preview",
                 "/v1/health", "/v1/stats", "/v1/ecg", "/v1/examples"):
        assert path in paths, path


def test_viewer_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="neighbours"' in page.text and "viewer.js" in page.text
    assert client.get("/static/viewer.js").status_code == 200
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/%2e%2e/app.py").status_code == 404


def test_synthetic_flag_comes_from_the_cohort_manifest(tmp_path):
    from queries.serve.previews import archive_is_synthetic

    (tmp_path / "echo").mkdir()
    assert not archive_is_synthetic(tmp_path / "echo")
    (tmp_path / "manifest.json").write_text(json.dumps({"synthetic": True}))
    assert archive_is_synthetic(tmp_path / "echo") and not archive_is_synthetic(None)


# -- search -----------------------------------------------------------------------------------------
def test_search_returns_exactly_the_cli_json(served, client):
    _, cohort, cli_doc, _, _ = served
    resp = client.post("/v1/search", files=_wfdb_files(cohort), data={"top_k": "5", "k": "10"})
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert list(doc) == list(cli_doc)  # same keys, same order
    assert doc["ecg"]["path"] == "p0000.hea"  # the uploaded name, not the server's temporary copy
    assert _strip_timings(doc) == _strip_timings(cli_doc)
    assert set(doc["timings_ms"]) == set(cli_doc["timings_ms"])


def test_search_options_filter_and_weighting(served, client):
    _, cohort, _, _, _ = served
    resp = client.post("/v1/search", files=_wfdb_files(cohort, "p0003"),
                       data={"top_k": "3", "k": "5", "weighting": "uniform", "filter": ["lvef>=45", "n_videos>=1"]})
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert 0 < len(doc["neighbours"]) <= 3
    assert all(n["phenotypes"]["lvef"] >= 45 for n in doc["neighbours"])
    assert doc["estimate"]["settings"]["weighting"] == "uniform" and doc["estimate"]["settings"]["k"] == 5


def test_search_an_example(client):
    examples = client.get("/v1/examples").json()
    assert len(examples) == 12 and examples[0] == {"id": 0, "name": "p0000"}
    resp = client.post("/v1/search", data={"example": "0", "top_k": "2"})
    assert resp.status_code == 200 and len(resp.json()["neighbours"]) == 2
    assert resp.json()["ecg"]["path"] == "p0000.hea"
    missing = client.post("/v1/search", data={"example": "99"})
    assert missing.status_code == 404 and "12 examples" in missing.json()["error"]


def test_bad_ecg_gets_400_with_the_cli_line_and_the_server_goes_on(served, client):
    _, cohort, _, cli_line, bad = served
    resp = client.post("/v1/search", files=[("files", ("broken.hea", b"this is not a WFDB header\n", "text/plain"))])
    assert resp.status_code == 400
    message = resp.json()["error"]
    assert "\n" not in message and "e2r-upload-" not in message
    assert f"Error: {message}" == cli_line.replace(f"{bad}/", "")
    assert client.post("/v1/search", files=_wfdb_files(cohort)).status_code == 200


@pytest.mark.parametrize("data, needle", [
    ({"top_k": "0"}, "top_k 0"),
    ({"k": "5000"}, "k 5000"),
    ({"top_k": "many"}, "top_k"),
    ({"weighting": "loudest"}, "weighting 'loudest'"),
    ({"filter": "lvef<<40"}, "lvef<<40"),
])
def test_bad_options_get_400_one_line(served, client, data, needle):
    resp = client.post("/v1/search", files=_wfdb_files(served[1]), data=data)
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["error"] and "\n" not in resp.json()["error"]


@pytest.mark.parametrize("files, needle", [
    ([], "no file uploaded"),
    ([("files", ("../../etc/evil.hea", b"x", "text/plain"))], "evil.hea: not a valid WFDB header"),  # base name only
    ([("files", ("a b;c.hea", b"x", "text/plain"))], "plain names"),
    ([("files", (".hidden.hea", b"x", "text/plain"))], "plain names"),
    ([("files", ("a.dat", b"x", "x")), ("files", ("b.dat", b"y", "x"))], "no WFDB header"),
    ([("files", ("a.hea", b"x", "x")), ("files", ("b.hea", b"y", "x"))], "several WFDB headers"),
    ([("files", (f"f{i}.dat", b"x", "x")) for i in range(5)], "at most 4 files"),
])
def test_bad_uploads_get_400(client, files, needle):
    resp = client.post("/v1/search", files=files or None, data={"top_k": "3"})
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["error"]


def test_upload_limit_gives_413(served):
    limited = served[0](max_upload_bytes=40_000)
    resp = limited.post("/v1/search", files=_wfdb_files(served[1]))  # 24 kB .dat + header (100 Hz, 10 s)
    assert resp.status_code == 200
    big = [("files", ("big.dcm", b"\0" * 50_000, "application/dicom"))]
    resp = limited.post("/v1/search", files=big)
    assert resp.status_code == 413 and "limit is" in resp.json()["error"]

    def chunks():  # no Content-Length: the cap still holds while reading
        for _ in range(50):
            yield b"\0" * 1000

    resp = limited.post("/v1/search", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert resp.status_code == 413
    assert limited.get("/v1/health").status_code == 200


# -- API key ----------------------------------------------------------------------------------------
def test_api_key_is_required_on_every_request(served):
    keyed = served[0](api_key=KEY)
    for method, path in (("get", "/"), ("get", "/v1/health"), ("get", "/v1/stats"), ("post", "/v1/search"),
                         ("get", "/v1/openapi.json"), ("get", "/static/viewer.js"), ("get", "/v1/studies/1.2.3")):
        resp = getattr(keyed, method)(path)
        assert resp.status_code == 401, (method, path)
        assert "API key" in resp.json()["error"]
    assert keyed.get("/v1/health", headers={"X-API-Key": "wrong-key-000"}).status_code == 401
    assert keyed.get("/v1/health", headers={"X-API-Key": KEY}).status_code == 200
    assert keyed.get("/v1/health", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert keyed.get("/?key=wrong").status_code == 401
    signin = keyed.get(f"/?key={KEY}", follow_redirects=False)
    assert signin.status_code == 303 and "httponly" in signin.headers["set-cookie"].lower()
    assert keyed.get("/v1/stats").status_code == 200  # the cookie now carries the key
    resp = keyed.post("/v1/search", files=_wfdb_files(served[1]))
    assert resp.status_code == 200


def test_cli_refuses_a_public_host_without_a_key(tmp_path, monkeypatch):
    monkeypatch.delenv("E2R_API_KEY", raising=False)
    result = runner.invoke(cli_app, ["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--host 0.0.0.0" in lines[0] and "--api-key" in lines[0]
    result = runner.invoke(cli_app, ["serve", "--archive", str(tmp_path / "nope"), "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "--archive" in result.stderr


# -- studies and previews ---------------------------------------------------------------------------
def _a_study(client, cohort) -> dict:
    return client.post("/v1/search", files=_wfdb_files(cohort), data={"top_k": "1"}).json()["neighbours"][0]


def test_study_payload(served, client):
    study = _a_study(client, served[1])
    payload = client.get(f"/v1/studies/{study['study_uid']}").json()
    assert payload["study_uid"] == study["study_uid"] and payload["n_videos"] == study["n_videos"]
    assert "patient_hash" not in payload
    assert all(not p.startswith("/") for p in payload["source_paths"])  # relative, as the index kept them
    missing = client.get("/v1/studies/1.2.3.4.5")
    assert missing.status_code == 404 and "not in collection" in missing.json()["error"]


def test_preview_is_an_animated_image_made_once_then_cached(served, client):
    from PIL import Image

    study = _a_study(client, served[1])
    url = f"/v1/studies/{study['study_uid']}/videos/0/preview"
    first = client.get(url)
    assert first.status_code == 200 and first.headers["content-type"] in ("image/webp", "image/gif")
    assert first.headers["x-e2r-preview"] == "made"
    img = Image.open(io.BytesIO(first.content))
    assert img.format in ("WEBP", "GIF") and img.is_animated and img.n_frames > 1 and img.info.get("loop") == 0
    second = client.get(url)
    assert second.headers["x-e2r-preview"] == "cached" and second.content == first.content
    assert any(p.suffix in (".webp", ".gif") for p in (served[0]().app.state.previews.cache_dir).iterdir())
    beyond = client.get(f"/v1/studies/{study['study_uid']}/videos/{study['n_videos']}/preview")
    assert beyond.status_code == 404 and "videos" in beyond.json()["error"]
    assert client.get(f"/v1/studies/{study['study_uid']}/videos/-1/preview").status_code == 404
    assert client.get(f"/v1/studies/{study['study_uid']}/videos/x/preview").status_code == 400


def test_preview_paths_never_come_from_the_request(served, client, tmp_path):
    study = _a_study(client, served[1])
    for uid in ("..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "..", study["study_uid"] + "%2F..%2F.."):
        resp = client.get(f"/v1/studies/{uid}/videos/0/preview")
        assert resp.status_code == 404, uid
    no_archive = served[0](archive_root=None, cache_dir=tmp_path / "c")
    resp = no_archive.get(f"/v1/studies/{study['study_uid']}/videos/0/preview")
    assert resp.status_code == 404 and "--archive" in resp.json()["error"]


@pytest.mark.parametrize("fmt", ["webp", "gif"])
def test_preview_of_a_real_jpeg_ybr_echo(fmt):
    """pydicom's real A4C cine (JPEG baseline, YBR colour, 30 frames): every frame, at its 30 fps."""
    from PIL import Image
    from pydicom import examples

    from queries.serve.previews import PREVIEW_PX, make_preview

    img = Image.open(io.BytesIO(make_preview(examples.get_path("ybr_color"), fmt)))
    assert img.n_frames > 20 and img.size == (PREVIEW_PX, PREVIEW_PX)  # Pillow merges repeated frames
    total_ms = 0
    for i in range(img.n_frames):
        img.seek(i)
        img.load()
        total_ms += img.info["duration"]
    assert abs(total_ms - 1000) <= 60  # 30 frames at 30 fps: one second, in real time


def test_preview_refuses_an_indexed_path_that_leaves_the_archive(tmp_path):
    """A payload whose source path points outside the archive root (a tampered index) is refused."""
    from e2r.store.base import Record
    from queries.serve.previews import PreviewCache, PreviewNotFound

    (tmp_path / "archive").mkdir()
    (tmp_path / "secret.dcm").write_bytes(b"x")

    class OneStudy:
        def retrieve(self, name, ids):
            return [Record(ids[0], {"study_uid": "1.2", "n_videos": 2,
                                    "source_paths": ["../secret.dcm", str(tmp_path / "secret.dcm")]})]

    cache = PreviewCache(OneStudy(), "c", tmp_path / "archive", tmp_path / "cache")
    for n in (0, 1):
        with pytest.raises(PreviewNotFound, match="not in the archive"):
            cache.get("1.2", n)


# -- ECG for drawing, and no PHI anywhere -------------------------------------------------------------
def test_ecg_signal_for_the_viewer(served, client):
    resp = client.post("/v1/ecg", files=_wfdb_files(served[1]))
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["leads"][:3] == ["I", "II", "III"] and len(doc["signal"]) == 12
    assert doc["fs"] == 100 and len(doc["signal"][0]) == 1000 and doc["name"] == "p0000.hea"
    assert client.get("/v1/examples/1/ecg").json()["name"] == "p0001.hea"
    assert client.get("/v1/examples/50/ecg").status_code == 404
    bad = client.post("/v1/ecg", files=[("files", ("x.hea", b"nonsense", "text/plain"))])
    assert bad.status_code == 400


def test_no_phi_in_any_response(served, client, tmp_path):
    """A DICOM ECG with a patient name, ID and birth date: none of them comes back, nor the cohort's
    patient IDs (outside the source paths the index kept)."""
    import pydicom
    from pydicom import examples

    ds = pydicom.dcmread(examples.get_path("waveform"))
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Sentinel^Jane", "MRN-SENTINEL-42", "19230405"
    path = tmp_path / "ecg.dcm"
    ds.save_as(path)
    upload = [("files", ("ecg.dcm", path.read_bytes(), "application/dicom"))]
    responses = [client.post("/v1/search", files=upload, data={"top_k": "12"}), client.post("/v1/ecg", files=upload)]
    assert responses[0].status_code == 200, responses[0].text
    for n in responses[0].json()["neighbours"]:
        responses.append(client.get(f"/v1/studies/{n['study_uid']}"))
    responses += [client.get("/v1/stats"), client.get("/v1/examples")]
    cohort_ids = {row.split(",")[1] for row in (served[1] / "phenotypes.csv").read_text().splitlines()[1:]}
    for resp in responses:
        doc = resp.json()
        if isinstance(doc, dict) and "source_paths" in doc:
            # Paths appear only where the index kept them (this cohort's folders are patient IDs,
            # which is why `e2r index --no-paths` exists); nowhere else.
            assert resp.url.path.startswith("/v1/studies/")
            doc.pop("source_paths")
        text = json.dumps(doc)
        for secret in ("Sentinel", "SENTINEL", "19230405", "patient_hash", "patient_id", *cohort_ids):
            assert secret not in text, (resp.url, secret)
