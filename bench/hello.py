"""The baseline for bench/ingest.py: FastAPI's hello world, served by uvicorn with the API's flags."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def root() -> dict[str, str]:
    return {"message": "Hello World"}
