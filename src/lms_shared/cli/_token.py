"""``lms-shared token mint``: a bearer token for local work, which local services accept.

The token is signed with the development key of the state folder
(``LMS_STATE_DIR``, made on first use, see :mod:`lms_shared.auth._devkeys`);
a service in development with no key settings trusts its JWKS. Only the
token goes to standard output, so ``TOKEN=$(lms-shared token mint ...)``
works. Everything here refuses ``LMS_ENV=production``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from lms_shared.auth import Policy
from lms_shared.auth._devkeys import (
    DEV_AUDIENCE,
    MAX_TTL,
    DevAuthError,
    DevAuthRefused,
    dev_auth_dir,
    dev_signing_key,
    mint_dev_token,
)
from lms_shared.clock import SystemClock
from lms_shared.errors import SettingsError
from lms_shared.settings import load_settings

__all__ = ["parse_course_roles", "token_app"]

token_app = typer.Typer(
    help="Tokens for local work (refused when LMS_ENV=production).", no_args_is_help=True
)


@token_app.callback()
def _group() -> None:
    """Tokens for local work (refused when LMS_ENV=production)."""  # keeps ``mint`` a command


def parse_course_roles(values: list[str]) -> dict[str, list[str]]:
    """``["c1=student", "c1=observer", "c2=instructor"]`` as roles per course.

    Raises:
        typer.BadParameter: a value is not ``COURSE=ROLE``.
    """
    found: dict[str, list[str]] = {}
    for value in values:
        course, sep, role = value.partition("=")
        if not sep or not course.strip() or not role.strip():
            raise typer.BadParameter(f"{value!r} is not COURSE=ROLE", param_hint="--course-role")
        found.setdefault(course.strip(), []).append(role.strip())
    return found


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@token_app.command()
def mint(
    sub: Annotated[str, typer.Option("--sub", help="the subject: a user id")],
    role: Annotated[
        list[str] | None, typer.Option("--role", help="a platform role (repeat)")
    ] = None,
    course_role: Annotated[
        list[str] | None,
        typer.Option("--course-role", metavar="COURSE=ROLE", help="a role in a course (repeat)"),
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="the organization")] = None,
    aud: Annotated[
        list[str] | None,
        typer.Option("--aud", help=f"audience (repeat); default {DEV_AUDIENCE}: any local service"),
    ] = None,
    ttl: Annotated[
        int, typer.Option("--ttl", min=1, max=MAX_TTL, help="lifetime in seconds")
    ] = 3600,
) -> None:
    """Print a bearer token for SUB with these roles, signed with the development key."""
    course_roles = parse_course_roles(course_role or [])
    try:
        settings = load_settings()
        key_dir = dev_auth_dir(settings.state_dir)
        _, created = dev_signing_key(settings.state_dir, env=settings.env)
        token = mint_dev_token(
            settings.state_dir,
            env=settings.env,
            clock=SystemClock(),
            subject=sub,
            roles=role or (),
            course_roles=course_roles,
            tenant=tenant,
            audience=aud or DEV_AUDIENCE,
            ttl=ttl,
        )
        known = Policy(overrides=settings.auth_roles).roles
    except (DevAuthRefused, SettingsError, ValueError) as exc:
        raise _fail(str(exc), 2) from None
    except (DevAuthError, OSError) as exc:
        raise _fail(str(exc), 1) from None
    if created:
        typer.echo(f"made a development signing key in {key_dir}", err=True)
    for name in sorted({*(role or ()), *(r for rs in course_roles.values() for r in rs)}):
        if name not in known:
            typer.echo(
                f"note: {name!r} is not a role of the default policy or LMS_AUTH_ROLES",
                err=True,
            )
    typer.echo(token)
