"""The web playground: static files (no build step) served by the ingress at ``/`` and
``/playground``; its scripts are under ``/static``. It talks to the public API like any client
(with an API key pasted into it when auth is on)."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/")
async def index() -> RedirectResponse:
    return RedirectResponse("/playground")


@router.get("/playground")
async def playground() -> FileResponse:
    return FileResponse(STATIC_DIR / "playground.html", media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})


static_files = StaticFiles(directory=STATIC_DIR)
