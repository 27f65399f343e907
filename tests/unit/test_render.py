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
