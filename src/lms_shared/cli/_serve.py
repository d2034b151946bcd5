"""``lms-shared serve``: run a service with uvicorn and the house settings.

Why not plain ``uvicorn module:app``? It works, but uvicorn prints its first
lines in its own format before the service's lifespan configures logging,
announces itself in a ``Server`` header, logs every request a second time,
believes ``X-Forwarded-For``/``-Proto`` from ``127.0.0.1`` whatever
``LMS_TRUSTED_PROXIES`` says, and waits forever for slow connections on
shutdown. ``serve`` configures logging first (every line is JSON), turns
those off (forwarding headers are the service's to honour, from the proxies
of ``LMS_TRUSTED_PROXIES`` only), and bounds the graceful shutdown by
``LMS_DRAIN_TIMEOUT``.
"""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from lms_shared.cli._loading import load_app
from lms_shared.errors import SettingsError
from lms_shared.observability import configure_logging, configure_service_logging
from lms_shared.settings import load_settings

__all__ = ["serve"]


def serve(
    target: Annotated[str, typer.Argument(help="import path, e.g. examples.courses.app:service")],
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 8000,
) -> None:
    """Serve a service with uvicorn: JSON logs from the first line, graceful drain."""
    try:
        settings = load_settings()
        app = load_app(target)
    except (ValueError, SettingsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    built = getattr(app.state, "service", None)  # its lines carry service and version at once
    if built is not None:
        configure_service_logging(built.settings, service=built.name, version=built.version)
    else:
        configure_logging(level=settings.log_level, fmt=settings.log_format)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        # the service's ForwardedMiddleware honours forwarding headers, from
        # LMS_TRUSTED_PROXIES only; uvicorn's own would believe 127.0.0.1
        proxy_headers=False,
        forwarded_allow_ips=[],
        timeout_graceful_shutdown=int(settings.drain_timeout) or 1,
        lifespan="on",
    )
    uvicorn.Server(config).run()
