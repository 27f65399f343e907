"""The API fuzzed from its own OpenAPI document (schemathesis): whatever a client sends, never a 5xx.

A bounded run: a few examples per operation, as an admin (the most that can be asked), against
a server with a real repository and workflow in it. The event stream is left out: it streams.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from tests.gitservers import free_port, make_repo
from tests.manifests import configmap, dump

from .conftest import ROLES, SlipwayServer

pytestmark = pytest.mark.cluster

MAX_EXAMPLES = int(os.environ.get("SLIPWAY_FUZZ_EXAMPLES", "8"))


@pytest.fixture(scope="module")
def fuzzed_server(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlipwayServer]:
    base = tmp_path_factory.mktemp("fuzz")
    env = {
        **os.environ,
        "SLIPWAY_HOME": str(base / "home"),
        "SLIPWAY_GIT_CACHE": str(base / "git-cache"),
        "KUBECONFIG": str(cluster.kubeconfig),
        "SLIPWAY_WEBHOOK_SECRET": secrets.token_hex(16),
    }
    (base / "home").mkdir()
    server = SlipwayServer(base / "home", env, free_port(), base / "server.log")
    eng = server.engine()
    for role in ROLES:
        server.tokens[role] = eng.create_token(f"{role}-fuzz", role)[1]
    work = make_repo(base / "repo", {"k8s/app.yaml": dump(configmap("fuzz"))})
    eng.register_repository({"id": "fuzz", "url": str(work.with_name("repo.git"))})
    eng.create_workflow(
        {"id": "fuzz", "repository": "fuzz", "target_path": "k8s", "destination": {"namespace": "default"}}
    )
    eng.store.close()
    server.start()
    yield server
    server.stop()
    assert "Traceback" not in server.log_text()


def test_no_request_makes_a_server_error(fuzzed_server: SlipwayServer) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    headers = {"Authorization": f"Bearer {fuzzed_server.tokens['admin']}"}
    tried: list[str] = []
    for operation in operations:
        if operation.path == "/api/v1/events":
            continue  # it streams until the client goes
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: Any) -> None:
                case.call_and_validate(base_url=fuzzed_server.url, headers=headers, checks=[not_a_server_error],
                                       timeout=60)  # fmt: skip

            try:
                call()
            except Unsatisfiable:
                # nothing invalid to send to an operation that takes nothing (GET /healthz)
                assert mode is GenerationMode.NEGATIVE, operation.path
                continue
            tried.append(f"{operation.method.upper()} {operation.path} ({mode})")
    assert len(tried) >= 30, tried
