"""The doctor's output: a table for people, a JSON list of steps for programs."""

import json
import textwrap

from doctor.steps import Status, Step

DETAIL_WIDTH = 76


def _wrap(text: str) -> list[str]:
    # URLs stay whole, so they can be copied from the terminal.
    return textwrap.wrap(text, DETAIL_WIDTH, break_long_words=False, break_on_hyphens=False)


def steps_table(url: str, steps: list[Step]) -> str:
    """One row per step (status, name, detail) and the fix under each step that needs one."""
    width = max(len(step.name) for step in steps) + 2
    indent = " " * (6 + width)
    lines = [f"Connection doctor: {url}", ""]
    for step in steps:
        detail = _wrap(step.detail) or [""]
        lines.append(f"{step.status:<6}{step.name:<{width}}{detail[0]}")
        lines.extend(indent + more for more in detail[1:])
        if step.fix and step.status in (Status.FAIL, Status.WARN):
            fix = _wrap(f"fix: {step.fix}")
            lines.extend(indent + part for part in fix)
    lines += ["", summary_line(steps)]
    return "\n".join(lines)


def summary_line(steps: list[Step]) -> str:
    counts = {status: sum(1 for s in steps if s.status == status) for status in Status}
    overall = "FAIL" if counts[Status.FAIL] else "PASS"
    return (
        f"{overall}: {counts[Status.FAIL]} failed, {counts[Status.WARN]} warning(s), "
        f"{counts[Status.PASS]} passed, {counts[Status.SKIP]} skipped"
    )


def steps_json(steps: list[Step]) -> str:
    return json.dumps([step.as_dict() for step in steps], indent=2)
