"""Extracting what one field manager applied from a live object's managedFields."""

from __future__ import annotations

from slipway.kube.fields import applied_by

JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {
        "name": "migrate",
        "namespace": "web",
        "uid": "1234",
        "labels": {"app": "web", "batch.kubernetes.io/controller-uid": "1234", "controller-uid": "1234"},
        "managedFields": [
            {
                "manager": "slipway",
                "operation": "Apply",
                "apiVersion": "batch/v1",
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:backoffLimit": {},
                        "f:template": {
                            "f:spec": {
                                "f:containers": {
                                    'k:{"name":"m"}': {".": {}, "f:image": {}, "f:name": {}, "f:args": {}},
                                },
                                "f:restartPolicy": {},
                            }
                        },
                    },
                },
            },
            {
                "manager": "kube-controller-manager",
                "operation": "Update",
                "subresource": "status",
                "fieldsV1": {"f:status": {"f:active": {}}},
            },
        ],
    },
    "spec": {
        "backoffLimit": 2,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "1234"}},
        "template": {
            "metadata": {"labels": {"controller-uid": "1234"}},
            "spec": {
                "containers": [
                    {"name": "m", "image": "busybox", "args": ["a", "b"], "terminationMessagePath": "/dev/x"},
                    {"name": "sidecar", "image": "other"},
                ],
                "restartPolicy": "Never",
                "dnsPolicy": "ClusterFirst",
            },
        },
    },
    "status": {"active": 1},
}


def test_only_the_managers_fields_come_back_with_the_objects_identity() -> None:
    assert applied_by(JOB, "slipway") == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": "web", "labels": {"app": "web"}},
        "spec": {
            "backoffLimit": 2,
            "template": {"spec": {"containers": [{"name": "m", "image": "busybox", "args": ["a", "b"]}],
                                  "restartPolicy": "Never"}},
        },
    }  # fmt: skip


def test_a_manager_that_applied_nothing_gives_none() -> None:
    assert applied_by(JOB, "kubectl") is None
    assert applied_by({"metadata": {}}, "slipway") is None


def test_sets_and_maps_owned_without_keys() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "c",
            "finalizers": ["a", "b"],
            "annotations": {"x": "1"},
            "managedFields": [
                {
                    "manager": "slipway",
                    "operation": "Apply",
                    "apiVersion": "v1",
                    "fieldsV1": {"f:metadata": {"f:finalizers": {".": {}, 'v:"b"': {}}, "f:annotations": {".": {}}}},
                }
            ],
        },
    }
    assert applied_by(obj, "slipway") == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "finalizers": ["b"], "annotations": {}},
    }
