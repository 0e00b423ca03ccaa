"""The admin console: server-rendered pages at /console for admins and reviewers."""

from bastion.console.web import create_console

__all__ = ["create_console"]
