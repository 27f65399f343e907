"""Rendering plain files (no cluster, no kustomize needed)."""

from pathlib import Path

import pytest

from slipway.errors import ManifestError
from slipway.render import render


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\ndata:\n  a: '1'\n"


def test_recursive_sorted_multi_document_lists_and_json(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "b.yaml": CM.format("b1") + "---\n" + CM.format("b2") + "---\n",
            "a/z.yml": CM.format("az"),
            "a/list.yaml": "apiVersion: v1\nkind: List\nitems:\n- "
            + CM.format("l1").replace("\n", "\n  ").rstrip()
            + "\n",
            "c.json": '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cj"}}',
            ".hidden/x.yaml": CM.format("hidden"),
            "README.md": "not a manifest",
        },
    )
    out = render(tmp_path, label="k8s")
    assert [m.obj["metadata"]["name"] for m in out] == ["l1", "az", "b1", "b2", "cj"]
    assert out[0].source == "k8s/a/list.yaml, document 1, item 1"
    assert out[3].source == "k8s/b.yaml, document 2"


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n",
            r"x.yaml, document 1: invalid YAML at line",
        ),
        (CM.format("ok") + "---\nkind: ConfigMap\nmetadata:\n  name: n\n", r"x.yaml, document 2: missing apiVersion"),
        ("apiVersion: v1\nmetadata:\n  name: n\n", "document 1: missing kind"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "ConfigMap has no metadata.name"),
        ("apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: p-\n", "generateName"),
        ("- a\n- b\n", "expected a Kubernetes object"),
    ],
)
def test_bad_input_names_file_and_document(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, {"ok.yaml": CM.format("fine"), "x.yaml": text})
    with pytest.raises(ManifestError, match=message):
        render(tmp_path)


def test_yaml_reads_as_kubectl_reads_it(tmp_path: Path) -> None:
    # Unquoted dates and times stay strings, base-60 numbers are strings, number keys become strings.
    write(
        tmp_path,
        {
            "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\n  annotations:\n    at: 2024-01-01\n"
            "data:\n  released: 2024-01-01\n  stamp: 2024-01-01T10:00:00Z\n  clock: 12:30\n  1: one\n"
            "  true: yes\n",
        },
    )
    (m,) = render(tmp_path)
    assert m.obj["data"] == {
        "released": "2024-01-01",
        "stamp": "2024-01-01T10:00:00Z",
        "clock": "12:30",
        "1": "one",
        "true": True,
    }
    assert m.obj["metadata"]["annotations"] == {"at": "2024-01-01"}


def test_merge_keys_may_be_overridden_but_duplicates_are_errors(tmp_path: Path) -> None:
    base = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\n"
    write(tmp_path, {"ok.yaml": base + "x: &d {a: '1', b: '2'}\ndata:\n  <<: *d\n  a: '3'\n"})
    (m,) = render(tmp_path)
    assert m.obj["data"] == {"a": "3", "b": "2"}
    write(tmp_path, {"ok.yaml": base + "data:\n  a: '1'\n  a: '2'\n"})
    with pytest.raises(ManifestError, match=r"ok.yaml, document 1: invalid YAML at line 7.*duplicate key 'a'"):
        render(tmp_path)


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\nbinaryData:\n  x: !!binary aGk=\n", "binary data"),
        (b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  x: .nan\n", "data.x is nan"),
        (b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata: !!set {a, b}\n", "a set"),
        (b"\xff\xfe\x00k\x00i\x00n\x00d", "binary file"),
        (b"kind: \xe9t\xe9\n", "not UTF-8"),
        (b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: b\n", "invalid YAML at line 4"),
    ],
)
def test_documents_json_cannot_hold_are_clear_errors(tmp_path: Path, raw: bytes, message: str) -> None:
    (tmp_path / "x.yaml").write_bytes(raw)
    with pytest.raises(ManifestError, match=message) as e:
        render(tmp_path)
    assert str(e.value).startswith("x.yaml")


def test_a_byte_order_mark_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "bom.yaml").write_bytes(b"\xef\xbb\xbf" + CM.format("bom").encode())
    assert [m.obj["metadata"]["name"] for m in render(tmp_path)] == ["bom"]
