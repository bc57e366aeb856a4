"""``manage.py doctor URL [--json] [--redirect-uri URI ...]``: test an MCP URL as clients do."""

import logging

from django.core.management.base import BaseCommand, CommandError

from doctor.checks import run_checks
from doctor.report import steps_json, steps_table
from doctor.steps import steps_failed


class Command(BaseCommand):
    help = (
        "Connect to any MCP server URL the way Claude, Cursor, VS Code and each MCP spec "
        "generation do, and print each step with PASS/WARN/FAIL and a fix. Exits non-zero "
        "when a step fails. Sends no credentials; may leave the test client registrations it "
        "made when the server offers no way to delete them."
    )
    requires_system_checks = []  # works against any server, without this one's database

    def add_arguments(self, parser):
        parser.add_argument("url", help="the MCP server URL, exactly as users paste it")
        parser.add_argument("--json", action="store_true", help="print the steps as JSON")
        parser.add_argument(
            "--redirect-uri",
            action="append",
            default=[],
            dest="redirect_uris",
            metavar="URI",
            help="also register a client with this redirect URI (repeatable) and use it for "
            "the /authorize check",
        )
        parser.add_argument(
            "--timeout", type=float, default=10.0, help="seconds per request (default 10)"
        )

    def handle(self, *args, url, redirect_uris, timeout, **options):
        # httpx logs every request at INFO: the table already says what was asked.
        httpx_log = logging.getLogger("httpx")
        level = httpx_log.level
        httpx_log.setLevel(logging.WARNING)
        try:
            steps = run_checks(url, redirect_uris=redirect_uris, timeout=timeout)
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        finally:
            httpx_log.setLevel(level)
        self.stdout.write(steps_json(steps) if options["json"] else steps_table(url, steps))
        failures = steps_failed(steps)
        if failures:
            names = ", ".join(step.name for step in failures)
            raise CommandError(f"{len(failures)} step(s) failed: {names}", returncode=1)
