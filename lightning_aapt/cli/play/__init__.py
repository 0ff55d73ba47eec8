"""`python -m lightning_aapt play`: playing a generated world live, at the edge of the project (a command and its
web app): the command (`command.py`), the `Game` (a stream, the toy world's truth beside it, recordings that replay
exactly), the WebSocket protocol and the server of the page."""

from lightning_aapt.cli.play.command import main

__all__ = ["main"]
