"""The HTTP server (FastAPI + uvicorn)."""

from typing import Any

from bastion.config import ServerConfig
from bastion.server.app import create_app

__all__ = ["create_app", "uvicorn_config"]


def uvicorn_config(app: Any, server: ServerConfig, host: str, port: int) -> Any:
    """How `bastion serve` (and the test suite's live server) runs the app."""
    import uvicorn

    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_keep_alive=server.keep_alive_s
    )
