"""A workflow's SOPS keys as configuration: validated without ever being repeated, shown only as a count,
and recognized files told from plain ones."""

from __future__ import annotations

import pytest

from slipway.errors import ConfigError
from slipway.model import Workflow
from slipway.render.sops import Decryption, is_encrypted, still_encrypted

AGE = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
PGP = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGZ0aW1lAQgA\n=abcd\n-----END PGP PRIVATE KEY BLOCK-----"


def test_age_identities_and_pgp_keys_are_taken_and_shown_only_as_a_count() -> None:
    d = Decryption.from_config({"keys": f"# created: 2026-01-01\n# public key: age1xyz\n{AGE}\n\n{PGP}\n"})
    assert d.split() == ([AGE], [PGP])
    wf = Workflow.from_config({"id": "w", "repository": "r", "decryption": {"provider": "sops", "keys": AGE}})
    shown = repr(wf.public()) + repr(wf)
    assert AGE[20:] not in shown and "1 age identity(ies), 0 PGP key(s)" in shown


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"keys": ""}, "decryption.keys: required"),
        ({"keys": "AGE-SECRET-KEY-1-leaked-but-wrong password123"}, "not age identities"),
        ({"keys": AGE, "provider": "kms"}, "decryption.provider"),
        ({"keys": AGE, "secret": "x"}, "secret"),
    ],
)
def test_bad_keys_are_refused_without_repeating_them(config: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        Workflow.from_config({"id": "w", "repository": "r", "decryption": config})
    assert message in e.value.message
    assert "password123" not in str(e.value) and AGE[20:] not in str(e.value)


def test_sops_files_are_told_from_plain_ones() -> None:
    assert is_encrypted(b"a: ENC[AES256_GCM,data:x]\nsops:\n    mac: ENC[x]\n", ".yaml")
    assert is_encrypted(b'{"a": "ENC[x]", "sops": {"mac": "ENC[x]"}}', ".json")
    assert not is_encrypted(b"kind: ConfigMap\ndata:\n  sops: mac\n", ".yaml")  # not a top-level table
    assert not is_encrypted(b"kind: ConfigMap\n", ".yaml")
    assert still_encrypted({"kind": "Secret", "sops": {"mac": "ENC[x]"}})
    assert not still_encrypted({"kind": "Secret", "data": {"sops": "x"}})
