"""The anchor: a bare FastAPI app with one pydantic POST endpoint and a GET, nothing else."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

app = FastAPI()


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent: str
    inputs: dict[str, Any]


@app.post("/echo")
async def echo(body: Payload) -> Payload:
    return body


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
