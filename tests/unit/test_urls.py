"""One function splits every form of credentials out of a Git URL; the rest of the URL may be shown."""

from __future__ import annotations

import pytest

from slipway import model, urls
from slipway.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "clean", "username", "password"),
    [
        ("https://ghp_tok3n@github.com/company/k8s", "https://github.com/company/k8s", "ghp_tok3n", None),
        ("https://deploy:s3cret@git.example/k8s.git", "https://git.example/k8s.git", "deploy", "s3cret"),
        ("http://u%40corp:p%3As%2Fs@127.0.0.1:8080/git/x.git", "http://127.0.0.1:8080/git/x.git", "u@corp", "p:s/s"),
        ("HTTPS://tok@Host/x", "HTTPS://Host/x", "tok", None),
        ("https://u:p@ss@host/x.git", "https://host/x.git", "u", "p@ss"),  # an unescaped @ in the password
        ("https://deploy:@host/x", "https://host/x", "deploy", ""),
        ("https://git.example/company/k8s.git", "https://git.example/company/k8s.git", None, None),
        ("https://host/path/with@sign", "https://host/path/with@sign", None, None),
        ("ssh://git@git.example:2222/company/k8s.git", "ssh://git@git.example:2222/company/k8s.git", None, None),
        ("git+ssh://git@host/k8s.git", "git+ssh://git@host/k8s.git", None, None),
        ("git@github.com:company/k8s.git", "git@github.com:company/k8s.git", None, None),
        ("/srv/git/k8s.git", "/srv/git/k8s.git", None, None),
        ("file:///srv/git/k8s.git", "file:///srv/git/k8s.git", None, None),
    ],
)
def test_split_url(url: str, clean: str, username: str | None, password: str | None) -> None:
    parts = urls.split_url(url)
    assert (parts.url, parts.username, parts.password) == (clean, username, password)
    assert urls.redact_url(url) == clean


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://gitlab.example/x.git?private_token=glpat-s3cret", "query string (private_token=...)"),
        ("https://h/x.git?access_token=s3cret&a=b", "query string (access_token=..., a=...)"),
        ("http://h/x?token=s3cret", "query string (token=...)"),
        ("ssh://git:s3cret@host/x.git", "an ssh URL cannot carry a password"),
    ],
)
def test_secrets_that_cannot_become_credentials_are_refused_without_showing_them(url: str, message: str) -> None:
    with pytest.raises(urls.UrlError) as err:
        urls.split_url(url)
    assert message in str(err.value)
    assert "s3cret" not in str(err.value)
    assert "s3cret" not in urls.redact_url(url)
    with pytest.raises(ConfigError, match=r"^url: ") as cfg:
        model.Repository.from_config({"url": url})
    assert "s3cret" not in str(cfg.value)


def test_redact_url_keeps_ssh_users_and_drops_passwords() -> None:
    assert urls.redact_url("ssh://git:hunter2@git.example/k8s.git") == "ssh://git@git.example/k8s.git"
    assert urls.redact_url("https://h/x.git?private_token=abc") == "https://h/x.git?private_token=***"


def test_redact_text_scrubs_urls_and_values() -> None:
    text = "fatal: unable to access 'https://bob:pa55word@h/x.git/': The requested URL returned error: 500 pa55word"
    out = urls.redact_text(text, ("pa55word",))
    assert "pa55word" not in out and "bob" not in out and "https://h/x.git/" in out
    assert "s3cret" not in urls.redact_text("repository 'https://h/x.git?token=s3cret/' not found")


def test_a_token_as_user_name_becomes_credentials_and_leaves_the_url() -> None:
    repo = model.Repository.from_config({"url": "https://ghp_s3cret@github.com/company/k8s"})
    assert repo.url == "https://github.com/company/k8s"
    assert repo.credentials is not None and repo.credentials.type == "token"
    assert repo.credentials.token == "ghp_s3cret" and repo.credentials.token_as_username
    assert "s3cret" not in str(repo.public()) and "s3cret" not in repr(repo)
    encoded = model.Repository.from_config({"url": "https://gh%70_s3cret@github.com/company/k8s"})
    assert encoded.credentials is not None and encoded.credentials.token == "ghp_s3cret"
    with pytest.raises(ConfigError, match="use one"):
        model.Repository.from_config({"url": "https://t@h/x", "credentials": {"type": "token", "token": "t"}})


def test_an_ssh_user_name_stays_in_the_url() -> None:
    for url in ("ssh://git@host/x.git", "git@host:x.git"):
        repo = model.Repository.from_config({"url": url})
        assert repo.url == url and repo.credentials is None


def test_public_view_of_a_url_stored_with_a_secret_hides_it() -> None:
    # A repository stored before URLs were split still has the token in its url column.
    repo = model.Repository("old", "https://ghp_s3cret@github.com/company/k8s")
    assert repo.public()["url"] == "https://github.com/company/k8s"
