"""`bastion serve`, and `chat` and `feedback` through a running server (top-level commands,
registered on the root app in `bastion.cli`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli.common import _platform, console, err, reports_errors
from bastion.errors import BastionError


@reports_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Default: server.host")] = None,
    port: Annotated[int | None, typer.Option(help="Default: server.port")] = None,
    preload: Annotated[bool, typer.Option(help="Load the default model before listening.")] = True,
) -> None:
    """Start the HTTP server."""
    import uvicorn

    from bastion.observability import configure_logging
    from bastion.server import create_app, uvicorn_config

    platform = _platform()
    cfg = platform.config
    configure_logging(cfg.logging.level, cfg.logging.json_format)
    if preload:
        with err.status(f"Loading model {cfg.resolved_default_model} ..."):
            platform.registry.backend(cfg.resolved_default_model)
    with err.status("Loading the guards' models ..."):
        platform.pipeline.load_guards()
    host, port = host or cfg.server.host, port or cfg.server.port
    err.print(f"Bastion {_version()} listening on [bold]http://{host}:{port}[/bold] (docs: /docs)")
    uvicorn.Server(uvicorn_config(create_app(platform), cfg.server, host, port)).run()


def _version() -> str:
    from bastion import __version__

    return __version__


@reports_errors
def chat(
    prompt: Annotated[
        str | None,
        typer.Argument(help="One-shot prompt; omit for an interactive chat."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name; default: the app's model.")] = None,
    app_name: Annotated[str, typer.Option("--app", help="Bastion app.")] = "chat",
    system: Annotated[str | None, typer.Option(help="A system message.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1)] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.7,
    url: Annotated[
        str, typer.Option(envvar="BASTION_URL", help="Server URL.")
    ] = "http://127.0.0.1:8080",
    key: Annotated[str | None, typer.Option(envvar="BASTION_API_KEY", help="API key.")] = None,
    stream: Annotated[bool, typer.Option(help="Print tokens as they arrive.")] = True,
) -> None:
    """Chat with a model through a running server (tokens stream as they come)."""
    from bastion.cli.chat_client import ChatClient

    if not key:
        raise BastionError(
            "no API key: pass --key or set BASTION_API_KEY (see `bastion keys create`)"
        )
    client = ChatClient(
        url,
        key,
        model=model,
        app=app_name,
        max_tokens=max_tokens,
        temperature=temperature,
    )
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    if prompt is not None:
        history.append({"role": "user", "content": prompt})
        client.send(history, stream=stream, out=console)
        return
    err.print(
        "Interactive chat; an empty line or Ctrl-D ends it. "
        "Rate the last answer with /up, /down or /rate 1-5."
    )
    ratings: dict[str, dict[str, Any]] = {"/up": {"thumbs": "up"}, "/down": {"thumbs": "down"}}
    while True:
        try:
            line = console.input("[bold cyan]you>[/bold cyan] ")
        except EOFError:
            break
        if not line.strip():
            break
        command = line.strip().split()
        if command[0] in ratings or command[0] == "/rate":
            try:
                body = ratings.get(command[0]) or {"rating": int(command[1])}
                client.feedback(body)
                err.print("[dim]feedback sent[/dim]")
            except (IndexError, ValueError):
                err.print("usage: /rate N, with N from 1 to 5")
            except BastionError as exc:
                err.print(f"[red]feedback not sent:[/red] {exc.message}")
            continue
        history.append({"role": "user", "content": line})
        answer = client.send(history, stream=stream, out=console)
        history.append({"role": "assistant", "content": answer})


@reports_errors
def feedback(
    trace_id: Annotated[str, typer.Argument(help="The answer's trace id.")],
    up: Annotated[bool | None, typer.Option("--up/--down", help="Thumbs up or down.")] = None,
    rating: Annotated[int | None, typer.Option(min=1, max=5, help="1 to 5.")] = None,
    correction: Annotated[str | None, typer.Option(help="The answer as it should be.")] = None,
    comment: Annotated[str | None, typer.Option()] = None,
    url: Annotated[
        str, typer.Option(envvar="BASTION_URL", help="Server URL.")
    ] = "http://127.0.0.1:8080",
    key: Annotated[str | None, typer.Option(envvar="BASTION_API_KEY", help="API key.")] = None,
) -> None:
    """Rate an answer through a running server (POST /v1/feedback)."""
    from bastion.cli.chat_client import send_feedback

    if not key:
        raise BastionError("no API key: pass --key or set BASTION_API_KEY")
    thumbs = None if up is None else ("up" if up else "down")
    body = {
        "trace_id": trace_id,
        "thumbs": thumbs,
        "rating": rating,
        "corrected_text": correction,
        "comment": comment,
    }
    console.print_json(
        data=send_feedback(url, key, {k: v for k, v in body.items() if v is not None})
    )
