import re

import pytest

from slipway import model
from slipway.errors import ConfigError


def test_generated_ids_never_collide_within_a_second() -> None:
    ids = [model.new_id("workflow") for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    assert all(re.match(r"^workflow-\d{10}-[0-9a-f]{12}$", i) for i in ids)


def test_repository_defaults_and_shorthand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_GIT_HOST", "https://git.example.org/")
    repo = model.Repository.from_config({"url": "company/frontend-config"})
    assert repo.url == "https://git.example.org/company/frontend-config"
    assert repo.branch == "main" and repo.poll_interval == "30s"
    assert repo.id.startswith("repo-")
    assert model.Repository.from_config({"url": "/srv/git/x.git"}).url == "/srv/git/x.git"
    assert model.Repository.from_config({"url": "git@host:a/b.git"}).url == "git@host:a/b.git"


def test_token_credentials_default_username_and_public_view_hides_secrets() -> None:
    repo = model.Repository.from_config(
        {"id": "r", "url": "https://h/x", "credentials": {"type": "token", "token": "ghp_secret"}}
    )
    assert repo.credentials is not None
    assert repo.credentials.username == "x-access-token"
    assert "ghp_secret" not in repr(repo) and "ghp_secret" not in str(repo.public())


@pytest.mark.parametrize(
    "config,message",
    [
        ({"url": "https://h/x", "poll_interval": "soon"}, "poll_interval"),
        ({"url": "https://h/x", "pol_interval": "30s"}, r"pol_interval: unknown key \(did you mean 'poll_interval'"),
        ({"url": "https://h/x", "credentials": {"type": "token"}}, "credentials.token: required"),
        ({"url": "https://h/x", "credentials": {"type": "oauth", "token": "t"}}, "credentials.type"),
        ({"url": 42}, "url: expected a string"),
        ({}, "url: required"),
        ({"url": "https://h/x", "id": "bad id!"}, "id: 'bad id!' is not a valid id"),
        ({"url": "https://h/x", "branch": "a..b"}, "branch"),
    ],
)
def test_repository_errors_name_the_key(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        model.Repository.from_config(config)


def test_workflow_full_policy() -> None:
    wf = model.Workflow.from_config(
        {
            "name": "Advanced",
            "repository": "r",
            "sync_policy": {
                "auto_prune": True,
                "retry": {"limit": 5, "backoff": "linear", "max_duration": "10m"},
                "health_check": {"enabled": True, "timeout": "10m", "failure_mode": "rollback"},
                "pre_sync_hooks": {1: "kubectl cluster-info", 2: "true"},  # a Lua array
                "post_sync_hooks": ["echo done"],
            },
        }
    )
    assert wf.sync_policy.retry.limit == 5 and wf.sync_policy.retry.delay(3) == 3
    assert wf.sync_policy.health_check.failure_mode == "rollback"
    assert wf.sync_policy.pre_sync_hooks == ["kubectl cluster-info", "true"]
    assert wf.id.startswith("workflow-") and wf.target_path == ""


@pytest.mark.parametrize(
    "config,message",
    [
        ({"repository": "r", "auto_sync": "yes"}, "auto_sync: expected a boolean"),
        ({"repository": "r", "sync_policy": {"retry": {"backoff": "random"}}}, "sync_policy.retry.backoff"),
        ({"repository": "r", "sync_policy": {"health_check": {"timeout": 5}}}, "sync_policy.health_check.timeout"),
        ({"repository": "r", "sync_policy": {"pre_sync_hooks": [1]}}, r"sync_policy.pre_sync_hooks\[1\]"),
        ({"repository": "r", "sync_policy": {"prune": True}}, "sync_policy.prune: unknown key"),
        ({"repository": "r", "destination": {"namespace": "Bad_NS"}}, "destination.namespace"),
        ({"name": "x"}, "repository: required"),
    ],
)
def test_workflow_errors_name_the_key(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        model.Workflow.from_config(config)


def test_retry_delays() -> None:
    assert [model.RetryPolicy(backoff="exponential").delay(n) for n in (1, 2, 3, 10)] == [1, 2, 4, 30]
    assert [model.RetryPolicy(backoff="fixed").delay(n) for n in (1, 5)] == [1, 1]


def test_a_password_in_the_url_becomes_credentials_and_leaves_the_url() -> None:
    repo = model.Repository.from_config({"url": "https://deploy:hunter2@git.example.com/k8s.git"})
    assert repo.url == "https://git.example.com/k8s.git"
    assert repo.credentials is not None and repo.credentials.type == "userpass"
    assert repo.credentials.username == "deploy" and repo.credentials.password == "hunter2"
    assert "hunter2" not in str(repo.public())
    with pytest.raises(ConfigError, match="use one"):
        model.Repository.from_config({"url": "https://a:b@h/x", "credentials": {"type": "token", "token": "t"}})


def test_a_branch_that_looks_like_an_option_is_refused() -> None:
    with pytest.raises(ConfigError, match="branch"):
        model.Repository.from_config({"url": "https://h/x", "branch": "--upload-pack=evil"})
