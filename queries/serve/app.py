"""The FastAPI app behind `e2r serve`: search, study payloads, previews, stats and the viewer.

`POST /v1/search` answers with exactly the JSON of `e2r search --json` (`SearchResult.to_dict()`
made plain by `e2r.util.jsonable`), except that `ecg.path` is the uploaded file's name, not the
server's temporary copy. Bad input gets 400 with the same one-line message the CLI prints after
`Error: `; an unknown study or video 404; a store problem 503.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from e2r.errors import ConfigError, E2RError, StoreError
from e2r.util import jsonable, one_line
from queries.serve.guard import KEY_COOKIE, APIKeyGuard, BodyLimit
from queries.serve.previews import PreviewCache, PreviewNotFound, archive_is_synthetic
from queries.serve.uploads import public_message, save_upload

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
WEIGHTINGS = ("softmax", "similarity", "uniform")
#: Payload fields never sent to a client (a salted hash is still a pseudonym of the patient).
HIDDEN_PAYLOAD = ("patient_hash",)
_COUNT_TTL_S = 60.0  # count() costs about a second at 100k studies: refresh it at most this often


@dataclass(frozen=True)
class ServeConfig:
    """How one `e2r serve` process answers (set from the CLI flags)."""

    collection: str
    cache_dir: Path                       # where previews are cached
    archive_root: Optional[Path] = None   # the indexed archive; previews need it
    examples_dir: Optional[Path] = None   # ECG records the viewer offers as examples
    api_key: Optional[str] = None         # required on every request when set
    max_upload_bytes: int = 16 * 2**20    # per request
    max_top_k: int = 100
    max_k: int = 1000
    synthetic: Optional[bool] = None      # None: detected from the archive's manifest.json


class _Unreadable(E2RError):
    """An uploaded ECG e2r cannot read (its message already names the file)."""


def create_app(config: ServeConfig, searcher: Any) -> FastAPI:
    """The app for one open store and `queries.search.Searcher`; the caller keeps the store open."""
    started = time.time()
    previews = PreviewCache(searcher.store, config.collection, config.archive_root, config.cache_dir)
    examples = list_examples(config.examples_dir)
    synthetic = archive_is_synthetic(config.archive_root) if config.synthetic is None else config.synthetic
    # Searches run concurrently (uvicorn's thread pool): ONNX Runtime and the embedded store answer
    # concurrent calls, and the Searcher serialises a torch encoder itself.
    count_cache: dict[str, float] = {}

    app = FastAPI(title="e2r", version=_version(), openapi_url="/v1/openapi.json", docs_url=None, redoc_url=None,
                  description="ECG -> similar echo studies + kNN phenotype estimate (Echo2ECG + Qdrant).")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # -- errors: one line, never a traceback ------------------------------------------------------
    @app.exception_handler(E2RError)
    async def _e2r_error(request: Request, err: E2RError) -> JSONResponse:
        status = 404 if isinstance(err, PreviewNotFound) else 503 if isinstance(err, StoreError) else 400
        return JSONResponse({"error": str(err)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
        first = (err.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return JSONResponse({"error": f"{where or 'request'}: {first.get('msg', 'invalid value')}"}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.error("unexpected error on %s", request.url.path, exc_info=err)
        return JSONResponse({"error": f"unexpected {type(err).__name__} ({one_line(err)}); this is an e2r bug, "
                                      "please report it"}, status_code=500)

    # -- the viewer -----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def viewer(request: Request) -> Response:
        if config.api_key and "key" in request.query_params:  # the guard has checked it
            resp = RedirectResponse("/", status_code=303)
            resp.set_cookie(KEY_COOKIE, config.api_key, httponly=True, samesite="strict")
            return resp
        return FileResponse(STATIC / "index.html", media_type="text/html")

    # -- API ------------------------------------------------------------------------------------
    @app.get("/v1/health", summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/stats", summary="Collection, model, point count, uptime")
    def stats() -> dict[str, Any]:
        now = time.time()
        if now - count_cache.get("at", 0.0) > _COUNT_TTL_S:
            count_cache["points"] = float(searcher.store.count(config.collection))
            count_cache["at"] = now
        meta = searcher.store.get_metadata(config.collection)
        return {
            "collection": config.collection,
            "model_hash": searcher.model_hash,
            "preset": meta.get("preset"),
            "ecg_preprocess": searcher.loaded.preset.ecg_preprocess.describe(),
            "points": int(count_cache["points"]),
            "backend": getattr(searcher.store, "backend", ""),
            "ecg_encoder": getattr(searcher.loaded, "backend", "torch"),  # onnxruntime or torch
            "uptime_s": round(now - started, 1),
            "e2r_version": _version(),
            "synthetic": synthetic,
            "previews": config.archive_root is not None,
            "examples": len(examples),
            "max_upload_bytes": config.max_upload_bytes,
            "max_top_k": config.max_top_k,
        }

    @app.post("/v1/search", summary="ECG upload -> the JSON of `e2r search --json`")
    def search(
        files: Optional[list[UploadFile]] = File(None, description="WFDB .hea + .dat/.mat, or one DICOM ECG"),
        example: Optional[int] = Form(None, description="an example's id from /v1/examples, instead of files"),
        top_k: int = Form(10, description="neighbours to list"),
        k: int = Form(50, description="labelled neighbours that vote in the estimate"),
        filter: Optional[list[str]] = Form(None, description="payload filter, repeatable: lvef<40, views=PLAX"),
        weighting: str = Form("softmax", description="softmax, similarity or uniform"),
    ) -> JSONResponse:
        from e2r.store import parse_filter

        if not 1 <= top_k <= config.max_top_k or not 1 <= k <= config.max_k:
            raise ConfigError(f"top_k {top_k} / k {k}: top_k must be 1-{config.max_top_k} and k 1-{config.max_k}")
        if weighting not in WEIGHTINGS:
            raise ConfigError(f"weighting {weighting!r}: use one of {', '.join(WEIGHTINGS)}")
        flt = parse_filter([f for f in filter if f.strip()]) if filter else None

        def run(path: Path) -> dict[str, Any]:
            return searcher.search(path, top_k=top_k, k=k, filter=flt or None, weighting=weighting).to_dict()

        doc, name = _with_ecg(files, example, examples, run)
        doc["ecg"] = {**doc["ecg"], "path": name}
        return JSONResponse(jsonable(doc))

    @app.post("/v1/ecg", summary="ECG upload -> its 12 leads in mV for drawing")
    def ecg_signal(files: list[UploadFile] = File(..., description="WFDB .hea + .dat/.mat, or one DICOM ECG")) -> JSONResponse:
        from queries.serve.ecg_view import ecg_for_display

        doc, name = _with_ecg(files, None, examples, ecg_for_display)
        return JSONResponse({"name": name, **doc})  # already plain; jsonable would walk every sample

    @app.get("/v1/examples", summary="The example ECGs this server was started with")
    def list_example_ecgs() -> list[dict[str, Any]]:
        return [{"id": i, "name": p.name.removesuffix(".hea")} for i, p in enumerate(examples)]

    @app.get("/v1/examples/{example_id}/ecg", summary="An example's 12 leads in mV for drawing")
    def example_signal(example_id: int) -> JSONResponse:
        from queries.serve.ecg_view import ecg_for_display

        doc, name = _with_ecg(None, example_id, examples, ecg_for_display)
        return JSONResponse({"name": name, **doc})  # already plain; jsonable would walk every sample

    @app.get("/v1/studies/{study_uid}", summary="The indexed payload of a study (no patient hash)")
    def study(study_uid: str) -> JSONResponse:
        payload = previews.payload(study_uid)
        return JSONResponse(jsonable({k: v for k, v in payload.items() if k not in HIDDEN_PAYLOAD}))

    @app.get("/v1/studies/{study_uid}/videos/{n}/preview", summary="Animated GIF of one of the study's cine loops",
             response_class=Response, responses={200: {"content": {"image/gif": {}}}})
    def preview(study_uid: str, n: int) -> Response:
        got = previews.get(study_uid, n)
        return Response(got.data, media_type=got.media_type,
                        headers={"Cache-Control": "private, max-age=3600", "X-E2R-Preview": "cached" if got.cached else "made",
                                 "X-E2R-Preview-Ms": f"{got.ms:.1f}"})

    app.state.config = config
    app.state.previews = previews
    # Added last = runs first: the key is checked before the body is read.
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(APIKeyGuard, api_key=config.api_key)
    return app


def _with_ecg(files: Optional[list[UploadFile]], example: Optional[int], examples: list[Path], fn: Any) -> tuple[Any, str]:
    """fn(path of the ECG record) for an upload (in a private temporary folder) or an example."""
    if files and example is not None:
        raise ConfigError("send either files or example, not both")
    if example is not None:
        if not 0 <= example < len(examples):
            raise PreviewNotFound(f"example {example}: this server has {len(examples)} examples "
                                  f"(ids 0..{len(examples) - 1}; list them at /v1/examples)")
        path = examples[example]
        return fn(path), path.name
    with tempfile.TemporaryDirectory(prefix="e2r-upload-") as tmp:
        folder = Path(tmp)
        record = save_upload([(f.filename, f.file.read()) for f in files or ()], folder)
        try:
            return fn(record), record.name
        except StoreError:
            raise
        except E2RError as err:
            raise _Unreadable(public_message(str(err), folder)) from None


def list_examples(folder: Optional[Path], limit: int = 12) -> list[Path]:
    """The ECG records in `folder` (WFDB headers and DICOM files), sorted, at most `limit`."""
    if folder is None:
        return []
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"--examples {folder}: not a folder; give a folder of ECG records (.hea or .dcm)")
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".hea", ".dcm"))
    return found[:limit]


def _version() -> str:
    from e2r import __version__

    return __version__
