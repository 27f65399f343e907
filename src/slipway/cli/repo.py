"""``slipway repo``: register, list, show and remove Git repositories."""

from __future__ import annotations

import click

from ..errors import TransientSourceError
from ..model import REPOSITORY_TYPES
from .common import engine, read_file, secret_from_env
from .output import emit_json, json_mode, out


@click.group("repo")
def repo() -> None:
    """Git repositories slipway reads from."""


@repo.command("add")
@click.argument("url")
@click.option("--id", "repo_id", help="Repository id (generated when omitted). An existing id is updated.")
@click.option("--type", "repo_type", type=click.Choice(list(REPOSITORY_TYPES)), default="git", show_default=True,
              help="helm: a chart repository (https:// or oci://HOST/PATH): workflows deploy its charts, chart "
              "dependencies under its URL use its credentials.")  # fmt: skip
@click.option("--branch", help="Branch to follow (git; default: main).")
@click.option(
    "--poll-interval", help='How often auto-sync checks for a new commit or chart release ("30s", "5m"; default: 30s).'
)
@click.option("--plain-http", is_flag=True, default=None, help="helm, oci://: the registry speaks HTTP, without TLS.")
@click.option("--ca-file", metavar="FILE", help="helm: the CA that signed the chart repository's TLS certificate.")
@click.option("--username", help="HTTPS username (userpass), or the token's username.")
@click.option("--token-env", metavar="VAR", help="Name of the environment variable holding an access token.")
@click.option("--password-env", metavar="VAR", help="Name of the environment variable holding the password.")
@click.option("--ssh-key", metavar="FILE", help="Private key file for SSH URLs.")
@click.option("--known-hosts", metavar="FILE", help="known_hosts for SSH (default: trust on first use).")
@click.option(
    "--no-check", is_flag=True, help="Register without asking the server whether the branch exists (offline)."
)
def add(
    url: str,
    repo_id: str | None,
    repo_type: str,
    branch: str | None,
    poll_interval: str | None,
    username: str | None,
    token_env: str | None,
    password_env: str | None,
    ssh_key: str | None,
    known_hosts: str | None,
    no_check: bool,
    plain_http: bool | None,
    ca_file: str | None,
) -> None:
    """Register a repository (URL, or owner/name on the default Git host).

    The server is asked first whether the branch exists (and takes the credentials): a mistake is
    an error now, not at the first diff, and registers nothing. --no-check skips that, e.g. to
    register a repository whose server cannot be reached from here yet.
    """
    config: dict[str, object] = {"url": url, "type": repo_type, "branch": branch, "poll_interval": poll_interval,
                                 "plain_http": plain_http, "ca_file": ca_file}  # fmt: skip
    if repo_id:
        config["id"] = repo_id
    token = secret_from_env(token_env, "--token-env")
    password = secret_from_env(password_env, "--password-env")
    if token:
        config["credentials"] = {"type": "token", "token": token, **({"username": username} if username else {})}
    elif password:
        config["credentials"] = {"type": "userpass", "username": username, "password": password}
    elif ssh_key:
        creds = {"type": "ssh", "ssh_key": read_file(ssh_key, "--ssh-key")}
        if known_hosts:
            creds["known_hosts"] = read_file(known_hosts, "--known-hosts")
        config["credentials"] = creds
    try:
        r = engine().register_repository(config, check=not no_check)
    except TransientSourceError as e:
        raise TransientSourceError(
            e.message, hint="nothing was registered; --no-check registers it without asking the server"
        ) from e
    if json_mode():
        emit_json(r.public())
    else:
        what = f"({r.branch})" if r.type == "git" else "(Helm chart repository)"
        out(f"repository {r.id} registered: {r.public()['url']} {what}")


@repo.command("list")
def list_() -> None:
    """Every registered repository: its URL, branch, poll interval and kind of credentials."""
    from .printing import table

    repos = engine().repositories()
    if json_mode():
        emit_json([r.public() for r in repos])
        return
    rows = [["ID", "TYPE", "URL", "BRANCH", "POLL", "CREDENTIALS"]]
    for r in repos:
        git = r.type == "git"
        rows.append([r.id, r.type, r.public()["url"], r.branch if git else "-", r.poll_interval,
                     r.credentials.type if r.credentials else "-"])  # fmt: skip
    for line in table(rows, [[""] * 6 for _ in rows], False):
        out(line)


@repo.command("show")
@click.argument("repo_id")
def show(repo_id: str) -> None:
    """One repository's settings (credentials by kind, never their values)."""
    r = engine().repository(repo_id)
    if json_mode():
        emit_json(r.public())
        return
    for key, value in r.public().items():
        out(f"{key + ':':<15}{value if value is not None else '-'}")


@repo.command("remove")
@click.argument("repo_id")
def remove(repo_id: str) -> None:
    """Forget a repository and its local mirror; refused while a workflow reads it."""
    engine().remove_repository(repo_id)
    if json_mode():
        emit_json({"id": repo_id, "removed": True})
    else:
        out(f"repository {repo_id} removed")
