"""Labels a workflow carries to be found among many (the overview's and the API's filters).

The same syntax as Kubernetes labels, checked the same way, so a label can be copied to and from
``kubectl`` without surprises.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ConfigError

_LABEL_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def check_labels(data: dict[str, Any], where: str) -> dict[str, str]:
    """Labels as Kubernetes has them (``team: payments``): what the overview and the API filter by."""
    out = {}
    for key, value in data.items():
        if not isinstance(key, str) or not _LABEL_NAME.match(key):
            raise ConfigError(f"{where}: {key!r} is not a valid label name (e.g. team or example.com/team)")
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            raise ConfigError(f"{where}.{key}: {value!r} is not a valid label value (63 characters: letters, "
                              "digits, '-', '_', '.')")  # fmt: skip
        out[key] = value
    return dict(sorted(out.items()))
