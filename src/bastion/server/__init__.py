"""The HTTP server (FastAPI + uvicorn)."""

from bastion.server.app import create_app

__all__ = ["create_app"]
