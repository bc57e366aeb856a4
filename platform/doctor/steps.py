"""What a check reports: a named step with PASS / WARN / FAIL / SKIP, a detail and a fix."""

from dataclasses import asdict, dataclass
from enum import StrEnum


class Status(StrEnum):
    PASS = "PASS"
    WARN = "WARN"  # works for the clients that matter, but something is off
    FAIL = "FAIL"  # a client of CLIENTS.md breaks here
    SKIP = "SKIP"  # could not run because an earlier step failed (that step says why)


@dataclass(frozen=True)
class Verdict:
    """A check's outcome before the runner names it."""

    status: Status
    detail: str
    fix: str = ""


def passed(detail: str) -> Verdict:
    return Verdict(Status.PASS, detail)


def warned(detail: str, fix: str) -> Verdict:
    return Verdict(Status.WARN, detail, fix)


def failed(detail: str, fix: str) -> Verdict:
    return Verdict(Status.FAIL, detail, fix)


def skipped(detail: str) -> Verdict:
    return Verdict(Status.SKIP, detail)


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict:
        return {**asdict(self), "status": str(self.status)}


def steps_failed(steps: list[Step]) -> list[Step]:
    """The steps that FAILed; the doctor's overall result is a failure when there is any."""
    return [step for step in steps if step.status == Status.FAIL]
