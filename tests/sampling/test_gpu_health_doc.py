"""docs/gpu-health.md lists every verdict rule and every JSON field the code emits."""

from __future__ import annotations

import dataclasses
import re

from tests.sampling.support import ROOT
from worker.sampling import gpu_health, verdict, xid_watch

DOC = (ROOT / "docs" / "gpu-health.md").read_text()


def _rules_rows() -> dict[str, list[str]]:
    rows = {}
    for line in DOC.splitlines():
        match = re.match(r"\| `(\w+)` \| (warning|critical) \| (.*) \| (.*) \|$", line)
        if match:
            rows[match[1]] = [match[2], match[3], match[4]]
    return rows


def test_doc_lists_every_rule_with_its_level_and_description() -> None:
    rows = _rules_rows()
    assert list(rows) == [rule.id for rule in verdict.RULES]
    for rule in verdict.RULES:
        level, description, citation = rows[rule.id]
        assert (level, description) == (rule.level, rule.description)
        if rule.xid is not None:
            assert citation == rule.citation.removeprefix(verdict.XID_CATALOGUE + " - ")


def test_doc_lists_every_json_field() -> None:
    empty = gpu_health.GpuHealth(**{f.name: None for f in dataclasses.fields(gpu_health.GpuHealth)})
    fields = set(empty.as_dict()) | set(xid_watch.XidStats().as_dict())
    documented = set(re.findall(r"`(\w+)`", DOC))
    assert fields - documented == set()
