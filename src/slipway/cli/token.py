"""``slipway token``: API tokens for ``slipway server`` — create (shown once), list, revoke.

A token is printed once, when it is made, and kept only as a salted hash: losing it means
revoking it and making another. ``list`` never shows a secret.
"""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from .common import actor, engine
from .output import console, emit_json, err_console, json_mode

ROLES = ("viewer", "operator", "admin")


@click.group("token")
def token() -> None:
    """API tokens for `slipway server` (roles: viewer, operator, admin)."""


@token.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="viewer reads; operator also diffs, syncs and rolls back; admin also changes configuration.")  # fmt: skip
def create(name: str, role: str) -> None:
    """Make a token NAME and print it (this once only)."""
    t, secret = engine().create_token(name, role, created_by=actor())
    if json_mode():
        emit_json({"token": secret, **t.public()})
        return
    err_console.print(f"token [bold]{escape(t.name)}[/bold] ({t.role}) created; it is shown this once only:")
    click.echo(secret)


@token.command("list")
def list_() -> None:
    """Every token: name, role, when it was made and last used (never a secret)."""
    rows = [t.public() for t in engine().tokens()]
    if json_mode():
        emit_json(rows)
        return
    table = Table("NAME", "ROLE", "ID", "CREATED", "BY", "LAST USED", box=None)
    for r in rows:
        table.add_row(escape(r["name"]), r["role"], r["id"], r["created_at"], escape(r["created_by"] or "-"),
                      r["last_used_at"] or "never")  # fmt: skip
    console.print(table)


@token.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke token NAME: the next request with it is refused."""
    engine().revoke_token(name)
    if json_mode():
        emit_json({"name": name, "revoked": True})
    else:
        console.print(f"token {escape(name)} revoked")
