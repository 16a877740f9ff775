"""Conformance reports: text for people, JSON for tools, JUnit XML for CI dashboards."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from partners.conformance._kit import CheckResult


def text_report(suite: str, results: Sequence[CheckResult]) -> str:
    lines = []
    for r in results:
        lines.append(f"{'PASS' if r.passed else 'FAIL'}  {r.case_id}  ({r.rationale})")
        if not r.passed:
            lines.append(f"      {r.detail}")
    failed = sum(not r.passed for r in results)
    lines.append(f"{suite}: {len(results) - failed}/{len(results)} checks passed")
    return "\n".join(lines)


def json_report(suite: str, results: Sequence[CheckResult]) -> str:
    return json.dumps(
        {
            "suite": suite,
            "passed": all(r.passed for r in results),
            "cases": [
                {
                    "id": r.case_id,
                    "rationale": r.rationale,
                    "passed": r.passed,
                    "detail": r.detail,
                    "seconds": round(r.seconds, 4),
                }
                for r in results
            ],
        },
        indent=2,
    )


def junit_report(suite: str, results: Sequence[CheckResult]) -> str:
    failures = sum(not r.passed for r in results)
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for r in results:
        case = ET.SubElement(
            root, "testcase", classname=suite, name=r.case_id, time=f"{r.seconds:.3f}"
        )
        if not r.passed:
            failure = ET.SubElement(case, "failure", message=r.detail)
            failure.text = r.rationale
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
