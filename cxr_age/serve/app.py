"""The web application of `cxr-age-serve` (FastAPI on Starlette): a page for people who do not write Python,
and a JSON API with the fields of `cxr-age-predict --json`.

- `GET /`: the page (plain HTML, CSS and JavaScript from `static/`; no build step, nothing from other hosts);
- `POST /api/predict`: multipart, one or many files (`files`), optional `saliency=1` and `tta=N` (test-time
  spread); any other field or value is a 400, exactly as the OpenAPI description says;
- `GET /api/model`: the models that answer, their test metrics and the limits;
- `GET /healthz`: liveness and the number of requests in progress;
- `GET /openapi.json`: the OpenAPI description FastAPI generates (its `/docs` page is off: it loads its
  scripts from a CDN, which a hospital network should not be asked to reach).

A request is refused whole only when it is over a limit (413), not a form (400) or the queue is full
(503); everything about a single file, however broken or hostile, is an entry in `skipped`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from cxr_age import __version__
from cxr_age.io.files import without_nan
from cxr_age.io.test_time import MAX_VIEWS
from cxr_age.serve.batcher import Batcher, Busy
from cxr_age.serve.limits import ServerLimits, UploadLimits
from cxr_age.serve.service import AgeService, Job, Outcome
from cxr_age.serve.uploads import BadForm, TooLarge, check_length, read_form

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
DEFAULT_LIMITS = ServerLimits()
PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


class Skipped(BaseModel):
    file: str
    reason: str


class Predictions(BaseModel):
    """The answer of `POST /api/predict`: the fields of `cxr-age-predict --json`."""

    regressor: dict[str, Any]
    classifier: dict[str, Any] | None
    predictions: list[dict[str, Any]]
    skipped: list[Skipped]


MULTIPART_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["files"],
    "properties": {
        "files": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "binary"},
                  "description": "PNG, JPEG, BMP or DICOM files; each name is only a label"},
        "saliency": {"type": "string", "enum": ["0", "1"],
                     "description": "1: a saliency overlay PNG (data URL) per prediction (keras engine only)"},
        "tta": {"type": "integer", "minimum": 0, "maximum": MAX_VIEWS,
                "description": f"test-time spread: the mean and SD (tta_sd) of the age over this many views (2-"
                               f"{MAX_VIEWS}; 0 or 1: none); a quality-control flag, not a confidence interval"}},
    "additionalProperties": False}}}}}


def _options(fields: dict[str, str]) -> tuple[bool, int | None]:
    """The request's `saliency` and `tta`, exactly as the schema allows them; anything else is a 400."""
    unknown = sorted(set(fields) - {"saliency", "tta"})
    if unknown:
        raise BadForm(f"unknown form field(s): {', '.join(unknown)} (allowed: files, saliency, tta)")
    saliency = fields.get("saliency", "0")
    if saliency not in ("0", "1"):
        raise BadForm(f"saliency must be 0 or 1, got {saliency[:20]!r}")
    tta = fields.get("tta", "0").strip()
    if not tta.isdigit() or int(tta) > MAX_VIEWS:
        raise BadForm(f"tta must be a whole number from 0 to {MAX_VIEWS}, got {tta[:20]!r}")
    return saliency == "1", int(tta) if int(tta) >= 2 else None


def _refusal(status: int, message: str, retry: bool = False) -> JSONResponse:
    return JSONResponse({"detail": message}, status, headers={"Retry-After": "1"} if retry else None)


def create_app(service: AgeService, limits: ServerLimits = DEFAULT_LIMITS) -> FastAPI:
    """The application answering with `service`'s models within `limits`.

    Examples:
        >>> service = AgeService(AgeModel.load("runs/regress-demo-1a2b3c4d"))
        >>> uvicorn.run(create_app(service), host="127.0.0.1", port=8000)
    """
    batcher: Batcher[Job, Outcome] = Batcher(service.predict_jobs, limits.batching)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await batcher.close()
        service.close()

    app = FastAPI(title="cxr-age", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Age from frontal chest X-rays (a reproduction of Karargyris et al., SPIE 2019).")
    app.state.service, app.state.batcher = service, batcher

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz")
    async def health() -> dict:
        return {"status": "ok", "in_progress": batcher.in_house}

    @app.get("/api/model")
    async def model() -> JSONResponse:
        return JSONResponse(without_nan({**service.description, "limits": {
            "file_bytes": limits.uploads.file_bytes, "request_bytes": limits.uploads.request_bytes,
            "files": limits.uploads.files, "max_pixels": service.options.max_pixels, **asdict(limits.batching)}}))

    @app.post("/api/predict", openapi_extra=MULTIPART_BODY,
              responses={200: {"model": Predictions}, 400: {"description": "not a multipart form"},
                         413: {"description": "over a size limit"}, 503: {"description": "the queue is full"}})
    async def predict(request: Request) -> JSONResponse:
        """Predict the age of each uploaded file; a file that cannot be read is an entry in `skipped`."""
        try:
            check_length(request.headers.get("content-length"), limits.uploads)
            with batcher.place():
                return await _answer(request, service, batcher, limits.uploads)
        except Busy as err:
            return _refusal(503, str(err), retry=True)
        except TooLarge as err:
            return _refusal(413, str(err))
        except BadForm as err:
            return _refusal(400, str(err))

    return app


async def _answer(request: Request, service: AgeService, batcher: Batcher, limits: UploadLimits) -> JSONResponse:
    started = time.perf_counter()
    form = await read_form(request.headers.get("content-type", ""), request.stream(), limits)
    if not form.files:
        raise BadForm("no files in the form (send them as the field `files`)")
    wants_maps, tta = _options(form.fields)
    job, refused = await asyncio.to_thread(service.store, form.files, wants_maps, tta)
    try:
        outcome = await batcher.submit(job, len(job.files)) if job.files else Outcome()
        rows, skipped = service.labelled(job, outcome)
    finally:
        await asyncio.to_thread(service.discard, job)
    skipped += [{"file": form.files[index].label, "reason": reason} for index, reason in refused]
    log.info("a request of %d files: %d predicted, %d skipped, %.2f s", len(form.files), len(rows), len(skipped),
             time.perf_counter() - started)
    models = service.description
    return JSONResponse(without_nan({"regressor": models["regressor"], "classifier": models["classifier"],
                                "predictions": rows, "skipped": skipped}))
