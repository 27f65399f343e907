"""``slipway health check``: health judged offline, as a user tries a script before installing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

CERT_SCRIPT = """
local hs = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      if c.status == "True" then hs.status = "Healthy" else hs.status = "Degraded" end
      hs.message = c.message
      return hs
    end
  end
end
return {status = "Progressing", message = "waiting for " .. table.getn(obj.spec.dnsNames or {}) .. " names"}
"""


def slipway(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "SLIPWAY_CUSTOMIZATIONS"}
    full.update(SLIPWAY_HOME=str(tmp_path / "home"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "slipway", *args], env=full, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip


def script(root: Path, group: str, kind: str, text: str) -> None:
    (root / group / kind).mkdir(parents=True)
    (root / group / kind / "health.lua").write_text(text)


def cert(name: str, ready: str | None, message: str = "") -> dict[str, object]:
    o: dict[str, object] = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                            "metadata": {"name": name, "namespace": "web"}, "spec": {"dnsNames": ["a", "b"]}}  # fmt: skip
    if ready is not None:
        o["status"] = {"conditions": [{"type": "Ready", "status": ready, "message": message}]}
    return o


def test_one_entry_per_object_in_file_order_and_the_exit_code(tmp_path: Path) -> None:
    custom = tmp_path / "custom"
    script(custom, "cert-manager.io", "Certificate", CERT_SCRIPT)
    a = tmp_path / "a.yaml"
    a.write_text(yaml.safe_dump_all([cert("good", "True", "issued"), {"apiVersion": "v1", "kind": "ConfigMap"}]))
    b = tmp_path / "b.json"  # Argo CD's own test data: no metadata at all
    b.write_text(json.dumps({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "spec": {}}))
    r = slipway(tmp_path, "health", "check", str(a), str(b), "--customizations", str(custom), "-o", "json")
    assert r.returncode == 1, r.stderr
    assert json.loads(r.stdout) == [
        {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "good", "namespace": "web",
         "status": "Healthy", "message": "issued"},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": None, "namespace": None, "status": "Healthy", "message": ""},
        {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": None, "namespace": None,
         "status": "Progressing", "message": "waiting for 0 names"},
    ]  # fmt: skip
    ok = slipway(tmp_path, "--customizations", str(custom), "health", "check", str(a))
    assert ok.returncode == 0, ok.stderr
    assert "Healthy     Certificate/good -n web: issued" in ok.stdout


def test_the_environment_and_the_flag_later_first(tmp_path: Path) -> None:
    env_dir, flag_dir = tmp_path / "env", tmp_path / "flag"
    script(env_dir, "cert-manager.io", "Certificate", 'return {status="Degraded", message="from the environment"}')
    script(flag_dir, "_", "_", 'return {status="Suspended", message="wildcard from the flag"}')
    f = tmp_path / "o.yaml"
    f.write_text(yaml.safe_dump_all([cert("c", None), {"apiVersion": "example.io/v1", "kind": "Widget"}]))
    r = slipway(tmp_path, "health", "check", str(f), "--customizations", str(flag_dir), "-o", "json",
                env={"SLIPWAY_CUSTOMIZATIONS": f"{env_dir}:"})  # fmt: skip
    got = [(e["status"], e["message"]) for e in json.loads(r.stdout)]
    # The exact directory of the environment beats the flag's wildcard: most specific first.
    assert got == [("Degraded", "from the environment"), ("Suspended", "wildcard from the flag")]
    assert r.returncode == 1


def test_a_broken_script_is_unknown_and_bad_input_is_exit_2(tmp_path: Path) -> None:
    custom = tmp_path / "custom"
    script(custom, "cert-manager.io", "Certificate", "while true do end")
    f = tmp_path / "o.yaml"
    f.write_text(yaml.safe_dump(cert("c", None)))
    r = slipway(tmp_path, "health", "check", str(f), "--customizations", str(custom), "-o", "json")
    assert r.returncode == 1
    [entry] = json.loads(r.stdout)
    assert entry["status"] == "Unknown" and "health.lua" in entry["message"] and "CPU" in entry["message"]

    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\n---\nmetadata: {name: x}\n")
    r = slipway(tmp_path, "health", "check", str(bad))
    assert r.returncode == 2 and f"{bad}: document 2: needs an apiVersion and a kind" in r.stderr
    assert r.stdout == ""
    r = slipway(tmp_path, "health", "check", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "no such file" in r.stderr
    r = slipway(tmp_path, "health", "check", str(f), "--customizations", str(tmp_path / "nodir"))
    assert r.returncode == 2 and "nodir" in r.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: [\n")
    r = slipway(tmp_path, "health", "check", str(broken))
    assert r.returncode == 2 and str(broken) in r.stderr and "Traceback" not in r.stderr
    r = slipway(tmp_path, "health", "check", str(f), env={"SLIPWAY_CUSTOMIZATIONS": str(tmp_path / "gone")})
    assert r.returncode == 2 and "gone" in r.stderr and "Traceback" not in r.stderr
