"""The model's outputs for a fixed seed are pinned: a refactor that moves any of them fails here.

See tests/model/pinned_outputs.py for the cases and how to regenerate the file when a change is
meant to move the numbers (say so in the commit).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pinned_outputs import CASES, PINNED_PATH, outputs

PINNED: dict[str, Any] = json.loads(PINNED_PATH.read_text())


def _differences(path: str, pinned: Any, fresh: Any) -> list[str]:
    if isinstance(pinned, dict):
        keys = set(pinned) | set(fresh)
        return [d for key in sorted(keys) for d in _differences(f"{path}.{key}", pinned.get(key), fresh.get(key))]
    if isinstance(pinned, float) and isinstance(fresh, int | float):
        # Bit-for-bit in practice; the tolerance only forgives summation order in the record sums.
        return [] if math.isclose(pinned, fresh, rel_tol=1e-9, abs_tol=1e-12) else [f"{path}: {pinned} -> {fresh}"]
    return [] if pinned == fresh else [f"{path}: {pinned!r} -> {fresh!r}"]


def test_every_case_is_pinned() -> None:
    assert sorted(PINNED) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_outputs_match_the_pinned_values(name: str) -> None:
    fresh = json.loads(json.dumps(outputs(name)))
    # New summary keys may be added; every pinned one must keep its value.
    fresh["summary"] = {key: value for key, value in fresh["summary"].items() if key in PINNED[name]["summary"]}
    assert not _differences(name, PINNED[name], fresh)
