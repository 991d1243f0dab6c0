"""The run's results for people (a table and a verdict in the marketplace's terms), for programs
(JSON) and for CI (JUnit XML, written with the standard library's ElementTree: the format is
a handful of elements, and every CI system reads it)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - writing only; nothing untrusted is parsed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from identity.simulator.conformance.catalogue import CONSEQUENCES, Consequence
from identity.simulator.conformance.session import Result, Status

_MARK = {Status.PASSED: "pass", Status.FAILED: "FAIL", Status.SKIPPED: "skip"}
_WIDTHS = (4, 36, 12, 36)
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
_NOT_XML = re.compile(r"[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(text: str) -> str:
    """Text the endpoint chose (a resultMsg, an error) made safe to print or to put in XML:
    no ANSI escape sequences (colours, cursor moves) and no character XML 1.0 forbids."""
    return _NOT_XML.sub("", _ANSI.sub("", text))


def _printed(text: str) -> str:
    """`shown`, its control characters (a newline too) spaces: a table row stays one line."""
    return _CONTROL.sub(" ", shown(text))


@dataclass(frozen=True)
class Verdict:
    passed: bool
    headline: str
    failures: list[tuple[str, list[str]]]
    """(what the marketplace would do, the failed cases that lead to it)."""
    skipped: list[tuple[str, list[str]]]
    """(why, the cases not run for that reason)."""


def _grouped(pairs: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    for key, name in pairs:
        groups.setdefault(key, []).append(name)
    return list(groups.items())


def verdict(results: list[Result]) -> Verdict:
    failed = [r for r in results if r.status is Status.FAILED]
    skipped = [r for r in results if r.status is Status.SKIPPED]
    ran = len(results) - len(skipped)
    failures = _grouped([(CONSEQUENCES[r.spec.consequence], r.spec.name) for r in failed])
    not_run = _grouped([(r.got, r.spec.name) for r in skipped])
    dial_unrun = [r.spec.name for r in skipped if r.spec.consequence is Consequence.DIAL]
    if failed:
        count = f"{len(failed)} of {ran} cases failed"
        if any(r.spec.consequence is Consequence.DIAL for r in failed):
            headline = f"FAIL: would not pass the dial test (拨测); {count}"
        else:
            ran_debug = "that ran " if dial_unrun else ""
            headline = (
                f"FAIL: {count} (the debug calls the dial test replays {ran_debug}passed, but "
                "real orders, members or calls meet these failures)"
            )
        headline += "; in the marketplace's terms:"
    elif dial_unrun:
        headline = (
            f"PASS on what was checked, but the dial test (拨测) is unchecked: its debug calls "
            f"{', '.join(dial_unrun)} were not run; {ran} cases passed, {len(skipped)} were not run"
        )
    elif skipped:
        headline = (
            f"PASS on what was checked: would pass the dial test (拨测); {ran} cases passed, "
            f"{len(skipped)} were not run, so their part of the contract is unchecked"
        )
    else:
        headline = f"PASS: would pass the dial test (拨测); all {ran} cases passed"
    return Verdict(not failed, headline, failures, not_run)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(results: list[Result], target: str) -> str:
    """The results as a table, the failures in full, then the verdict."""
    heads = ("", "case", "§", "expected", "got")
    rows = [heads] + [
        (_MARK[r.status], r.spec.name, r.spec.section, r.spec.expected, _printed(r.got))
        for r in results
    ]
    lines = [f"KooGallery conformance: {_printed(target)}", ""]
    for row in rows:
        cells = [_cut(cell, width).ljust(width) for cell, width in zip(row, _WIDTHS, strict=False)]
        lines.append("  ".join([*cells, _cut(row[4], 60)]).rstrip())
    failed = [r for r in results if r.status is Status.FAILED]
    if failed:
        lines += ["", "Failures:"]
        for r in failed:
            lines += [
                f"  {r.spec.name} ({r.spec.section})",
                f"    sent:     {r.spec.sent}",
                f"    expected: {r.spec.expected}",
                f"    got:      {_printed(r.got)}",
            ]
    lines += ["", *verdict_lines(verdict(results))]
    return "\n".join(lines)


def verdict_lines(found: Verdict) -> list[str]:
    lines = [f"Verdict: {found.headline}"]
    lines += [f"  - {what}: {', '.join(names)}" for what, names in found.failures]
    if found.skipped:
        lines.append("Not run:")
        lines += [f"  - {why}: {', '.join(names)}" for why, names in found.skipped]
    return lines


def as_json(results: list[Result], target: str) -> dict[str, Any]:
    found = verdict(results)
    counts = {status.value: sum(r.status is status for r in results) for status in Status}
    return {
        "target": target,
        "passed": found.passed,
        "verdict": found.headline,
        "counts": counts | {"total": len(results)},
        "failures": [{"consequence": what, "cases": names} for what, names in found.failures],
        "skipped": [{"reason": why, "cases": names} for why, names in found.skipped],
        "cases": [
            {
                "name": r.spec.name,
                "section": r.spec.section,
                "sent": r.spec.sent,
                "expected": r.spec.expected,
                "got": r.got,
                "result": r.status.value,
                "seconds": round(r.seconds, 3),
            }
            for r in results
        ],
    }


def write_junit(results: list[Result], target: str, path: Path) -> None:
    """One <testsuite> of one <testcase> per case; a failure's message is what came back, a
    skip's the reason."""
    failed = sum(r.status is Status.FAILED for r in results)
    skipped = sum(r.status is Status.SKIPPED for r in results)
    seconds = f"{sum(r.seconds for r in results):.3f}"
    counts = {"tests": str(len(results)), "failures": str(failed), "errors": "0",
              "skipped": str(skipped), "time": seconds}  # fmt: skip
    suites = ET.Element("testsuites", {"name": "KooGallery conformance", **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": "koogallery-conformance", **counts})
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", {"name": "target", "value": shown(target)})
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": f"koogallery.{r.spec.group}", "name": r.spec.name,
             "time": f"{r.seconds:.3f}"},
        )  # fmt: skip
        detail = f"{r.spec.section}\nsent: {r.spec.sent}\nexpected: {r.spec.expected}"
        got = shown(r.got)
        if r.status is Status.FAILED:
            failure = ET.SubElement(case, "failure", {"message": got, "type": "conformance"})
            failure.text = f"{detail}\ngot: {got}"
        elif r.status is Status.SKIPPED:
            ET.SubElement(case, "skipped", {"message": got})
        else:
            ET.SubElement(case, "system-out").text = f"{detail}\ngot: {got}"
    tree = ET.ElementTree(suites)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
