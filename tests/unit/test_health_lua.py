"""Health customizations in Argo CD's format: directory layout, wildcards, the Lua 5.1 environment and its bounds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from slipway import health
from slipway.health.customizations import Customizations

CERT = "cert-manager.io", "Certificate"

READY_SCRIPT = """
hs = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for i, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" and condition.status == "False" then
      hs.status = "Degraded"
      hs.message = condition.message
      return hs
    end
    if condition.type == "Ready" and condition.status == "True" then
      hs.status = "Healthy"
      hs.message = condition.message
      return hs
    end
  end
end
hs.status = "Progressing"
hs.message = "Waiting for certificate"
return hs
"""


def write(root: Path, group: str, kind: str, text: str) -> Path:
    d = root / group / kind
    d.mkdir(parents=True, exist_ok=True)
    (d / "health.lua").write_text(text)
    return d / "health.lua"


def cert(ready: str | None = None, message: str = "") -> dict[str, Any]:
    o: dict[str, Any] = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "web"}}
    if ready is not None:
        o["status"] = {"conditions": [{"type": "Ready", "status": ready, "message": message}]}
    return o


def judge(c: Customizations, o: dict[str, Any], group: str = CERT[0], kind: str = CERT[1]) -> health.Health:
    return health.assess(group, kind, o, customizations=c)


def test_a_script_decides_and_its_message_is_kept_verbatim(tmp_path: Path) -> None:
    write(tmp_path, *CERT, READY_SCRIPT)
    c = Customizations([tmp_path])
    assert judge(c, cert("False", '  Issuer  "le" not found\n')) == health.Health(
        "Degraded", '  Issuer  "le" not found\n'
    )
    assert judge(c, cert("True", "ok")) == health.Health("Healthy", "ok")
    assert judge(c, cert()) == health.Health("Progressing", "Waiting for certificate")
    # Missing and being deleted come before any script, as in Argo CD.
    assert judge(c, None).status == health.MISSING  # type: ignore[arg-type]


def test_a_customization_wins_over_a_built_in_rule(tmp_path: Path) -> None:
    write(tmp_path, "", "ConfigMap", 'return {status="Degraded", message="no config maps here"}')
    write(tmp_path, "apps", "Deployment", 'return {status="Suspended", message="mine"}')
    c = Customizations([tmp_path])
    assert health.assess("", "ConfigMap", {"metadata": {"name": "c"}}, customizations=c).status == "Degraded"
    assert health.assess("apps", "Deployment", {"metadata": {"name": "d"}}, customizations=c).message == "mine"


def test_wildcards_and_the_most_specific_directory_wins(tmp_path: Path) -> None:
    write(tmp_path, "_.crossplane.io", "_", 'return {status="Degraded", message="group wildcard, kind wildcard"}')
    write(tmp_path, "_.crossplane.io", "Bucket", 'return {status="Healthy", message="group wildcard, exact kind"}')
    write(tmp_path, "s3.aws.crossplane.io", "_", 'return {status="Progressing", message="exact group, kind wildcard"}')
    write(tmp_path, "s3.aws.crossplane.io", "Bucket", 'return {status="Healthy", message="exact"}')
    c = Customizations([tmp_path])
    o = {"metadata": {"name": "b"}}
    assert judge(c, o, "s3.aws.crossplane.io", "Bucket").message == "exact"
    assert judge(c, o, "s3.aws.crossplane.io", "Queue").message == "exact group, kind wildcard"
    assert judge(c, o, "ec2.aws.crossplane.io", "Bucket").message == "group wildcard, exact kind"
    assert judge(c, o, "ec2.aws.crossplane.io", "Instance").message == "group wildcard, kind wildcard"
    # `_.crossplane.io` is every group ending in `.crossplane.io`, not crossplane.io itself nor a lookalike
    assert judge(c, o, "crossplane.io", "Bucket").message == ""
    assert judge(c, o, "notcrossplane.io", "Bucket").message == ""


def test_later_sources_come_first(tmp_path: Path) -> None:
    write(tmp_path / "a", *CERT, 'return {status="Healthy", message="a"}')
    write(tmp_path / "b", *CERT, 'return {status="Healthy", message="b"}')
    assert judge(Customizations([tmp_path / "a", tmp_path / "b"]), cert()).message == "b"
    assert judge(Customizations([tmp_path / "b", tmp_path / "a"]), cert()).message == "a"
    # An exact match in an earlier source still beats a wildcard of a later one: most specific first.
    write(tmp_path / "c", "_", "_", 'return {status="Healthy", message="c"}')
    assert judge(Customizations([tmp_path / "a", tmp_path / "c"]), cert()).message == "a"
    # argocd-cm keys from ConfigMaps come before every directory.
    cm = {
        "resource.customizations.health.cert-manager.io_Certificate": 'return {status="Healthy", message="cm"}',
        "resource.customizations.health.PersistentVolumeClaim": 'return {status="Healthy", message="core"}',
        "resource.customizations.ignoreDifferences.all": "jsonPointers: []",
    }
    c = Customizations([tmp_path / "a"], configmaps=lambda: {"cm/x": cm})
    assert judge(c, cert()).message == "cm"
    assert judge(c, {"metadata": {}}, "", "PersistentVolumeClaim").message == "core"


def test_lua_5_1_idioms_and_the_safe_os(tmp_path: Path) -> None:
    write(
        tmp_path,
        *CERT,
        """
local os = require("os")
local t = {}
table.insert(t, "a"); table.insert(t, "b")
local stamp = os.date("!%Y-%m-%dT%H:%M:%SZ", 86400)
local n = unpack({table.getn(t)})
if io == nil and os.execute == nil and os.getenv == nil and dofile == nil and loadfile == nil
   and type(os.time()) == "number" and string.format("%d", 3) == "3" and math.floor(2.5) == 2 then
  return {status = "Healthy", message = n .. " items at " .. stamp}
end
return {status = "Degraded", message = "sandbox leaks"}
""",
    )
    assert judge(Customizations([tmp_path]), cert()) == health.Health("Healthy", "2 items at 1970-01-02T00:00:00Z")


@pytest.mark.parametrize(
    "script,expected",
    [
        ('error("the script broke")', "the script broke"),
        ("return nil", "returned no health"),
        ("", "returned no health"),
        ('return {status="Fine"}', "invalid health status"),
        ('return "Healthy"', "returned a string"),
        ("return 42", "returned a number"),
        ("this is not lua", "syntax error"),
        ('local s = string.rep("x", 1024 * 1024) local t = {} for i = 1, 1e9 do t[i] = s .. i end', "memory"),
        ('return {status="Healthy", message=io.open("/etc/passwd"):read("*a")}', "io"),
        ("return {status={}}", "invalid health status 'a table'"),
        ('return {status="Healthy", message={}}', "message that is a table"),
        # Code of the script's that would run after its bound: refused, or still bounded.
        ("setmetatable({}, {__gc = function() while true do end end}) return {status='Healthy'}", "__gc"),
        ("return setmetatable({}, {__index = function() while true do end end})", "invalid health status 'a nil'"),
        ("error(setmetatable({}, {__tostring = function() while true do end end}))", "CPU"),
    ],
)
def test_a_broken_script_is_unknown_naming_it(tmp_path: Path, script: str, expected: str) -> None:
    path = write(tmp_path, *CERT, script)
    h = judge(Customizations([tmp_path]), cert())
    assert h.status == health.UNKNOWN
    assert str(path) in h.message
    assert expected in h.message


def test_an_endless_loop_is_stopped_by_its_cpu_bound(tmp_path: Path) -> None:
    # A pcall around the loop must not let the script swallow its own timeout.
    path = write(tmp_path, *CERT, "while true do pcall(function() while true do end end) end")
    c = Customizations([tmp_path], cpu_seconds=0.3)
    started = time.monotonic()
    h = judge(c, cert())
    assert time.monotonic() - started < 5
    assert h.status == health.UNKNOWN and str(path) in h.message and "CPU" in h.message


def test_scripts_see_a_copy_and_share_nothing(tmp_path: Path) -> None:
    write(
        tmp_path,
        *CERT,
        """
counter = (counter or 0) + 1
obj.metadata.name = "changed"
return {status="Healthy", message=tostring(counter)}
""",
    )
    c = Customizations([tmp_path])
    o = cert()
    assert judge(c, o).message == "1"
    assert judge(c, o).message == "1"
    assert o["metadata"]["name"] == "web"


def test_a_bad_configmap_key_is_named_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    cm = {"resource.customizations.health.": 'return {status="Degraded"}'}
    c = Customizations([], configmaps=lambda: {"cm/x": cm})
    assert c.find("", "Pod") is None
    assert "cm/x" in caplog.text and "resource.customizations.health." in caplog.text


PATTERN_CASES = [
    ("hello world", "o w"), ("hello world", "(o)(r)"), ("hello", "l+"), ("hello", "l*"), ("hello", "x*"),
    ("hello", "^h"), ("hello", "^e"), ("hello", "o$"), ("hello", "l$"), ("key=value; k2=v2", "(%w+)=(%w+)"),
    ("THE (quick) fox", "%((%a+)%)"), ("f(a(b)c)d", "%b()"), ("THE (quick) fox", "%f[%a]%a+"),
    ("abcabc", "(a)(b)c%1"), ("  trim  ", "^%s*(.-)%s*$"), ("a.b.c", "[%.]"), ("a-b_c", "[a-c_]+"),
    ("x = 10, y = 20", "(%a)%s*=%s*(%d+)"), ("ratio 3/4", "()(%d+)/(%d+)()"), ("", ".-"), ("", "^$"),
    ("aaa", "a-b"), ("aaa", "a?a?a?a"), ("[x]", "[]]"), ("[x]", "[^]]+"), ("nginx:1.25@sha256:abc", "^(.-):(.-)@(.*)$"),
    ("abc", "[^%a]"), ("tab\there", "%c"), ("Ready=True", "(%u%l+)=(%u%l+)"), ("a,b,,c", "([^,]*)"),
]  # fmt: skip


def _pattern_script(s: str, p: str) -> str:
    q = lambda v: "'" + v.replace("\\", "\\\\").replace("'", "\\'").replace("\t", "\\t") + "'"  # noqa: E731
    return f"""
local function show(...) local t = table.pack(...) local out = {{}}
  for i = 1, t.n do out[#out + 1] = tostring(t[i]) end return table.concat(out, ",") end
local parts = {{show(string.find({q(s)}, {q(p)})), show(string.find({q(s)}, {q(p)}, 3)), show(string.match({q(s)}, {q(p)})),
  show(string.gsub({q(s)}, {q(p)}, "<%0>")), show(string.gsub({q(s)}, {q(p)}, function(a) return "[" .. tostring(a) .. "]" end, 2))}}
for a, b in string.gmatch({q(s)}, {q(p)}) do parts[#parts + 1] = show(a, b) end
return {{status = "Healthy", message = table.concat(parts, " | ")}}
"""


@pytest.mark.parametrize("subject,pattern", PATTERN_CASES)
def test_the_lua_pattern_matcher_agrees_with_lua_s_own(subject: str, pattern: str) -> None:
    from slipway.health import lua

    script = _pattern_script(subject, pattern)
    c = lua.run(script, "p.lua", {}, pattern_cost=float("inf"))
    mine = lua.run(script, "p.lua", {}, pattern_cost=0)
    assert c.status == "Healthy", c.message
    assert mine == c


def test_a_costly_pattern_is_stopped_by_the_cpu_bound_not_hung(tmp_path: Path) -> None:
    # The C matcher would backtrack here for minutes, out of the debug hook's reach.
    path = write(
        tmp_path,
        *CERT,
        'local s = string.rep("a", 400) return {status = "Healthy", message = tostring(s:find(".-.-.-.-b"))}',
    )
    started = time.monotonic()
    h = judge(Customizations([tmp_path], cpu_seconds=0.3), cert())
    assert time.monotonic() - started < 10
    assert h.status == health.UNKNOWN and str(path) in h.message and "CPU" in h.message
