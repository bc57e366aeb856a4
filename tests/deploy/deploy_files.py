"""Read the deployment files the way Docker would, so tests can hold them against the code.

No Docker engine is needed: docker-compose.yml is parsed with PyYAML (merge keys included),
``${...}`` is interpolated as compose does, the Dockerfile is split into instructions, and the
variables the platform reads are found in its source.
"""

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.conf import settings
from django.utils.module_loading import import_string

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
HEALTHCHECK_SCRIPT = ROOT / "deploy" / "healthcheck.py"

APP_SERVICES = ("migrate", "web", "worker", "beat")
# Variables docker compose itself reads from .env (not interpolated into the file).
COMPOSE_OWN_VARIABLES = {"COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME"}
# Variables uvicorn reads in the web container (its worker count).
READ_BY_UVICORN = {"WEB_CONCURRENCY"}

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class MissingVariable(Exception):
    """A ``${NAME:?message}`` whose variable is unset: compose refuses to start."""


def compose() -> dict:
    """docker-compose.yml as compose sees it before interpolation."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def interpolate(value, variables: dict[str, str]):
    """Apply compose's interpolation to every string in ``value`` (keys stay as they are)."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if isinstance(value, str):
        return _interpolate_text(value, variables)
    return value


def _interpolate_text(text: str, variables: dict[str, str]) -> str:
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            body = text[i + 2 : end]
            name, op, arg = re.fullmatch(rf"({_NAME})(?:(:?[-?+])(.*))?", body, re.S).groups()
            value = variables.get(name)
            unset = value is None or (op is not None and op.startswith(":") and value == "")
            if op and op.endswith("-"):
                out.append(_interpolate_text(arg, variables) if unset else value)
            elif op and op.endswith("+"):
                out.append("" if unset else _interpolate_text(arg, variables))
            elif op and op.endswith("?"):
                if unset:
                    raise MissingVariable(f"{name}: {arg}")
                out.append(value)
            else:
                out.append(value or "")
            i = end + 1
        elif match := re.match(rf"\$({_NAME})", text[i:]):
            out.append(variables.get(match[1]) or "")
            i += len(match[0])
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for index in range(start, len(text)):
        if text.startswith("${", index):
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError(f"unclosed ${{ in {text!r}")


def referenced_variables(value) -> set[str]:
    """Every NAME that ``${NAME...}`` or ``$NAME`` refers to, nested defaults included."""
    if isinstance(value, dict):
        return set().union(*(referenced_variables(item) for item in value.values()), set())
    if isinstance(value, list):
        return set().union(*(referenced_variables(item) for item in value), set())
    if not isinstance(value, str):
        return set()
    text = value.replace("$$", "")
    return set(re.findall(rf"\$\{{({_NAME})", text)) | set(re.findall(rf"\$({_NAME})", text))


def caddyfile_variables() -> set[str]:
    """Environment variables the Caddyfile substitutes (``{$NAME}``)."""
    return set(re.findall(rf"\{{\$({_NAME})(?::[^}}]*)?\}}", CADDYFILE.read_text()))


@dataclass
class EnvEntry:
    name: str
    value: str
    active: bool  # "NAME=value" rather than the optional "# NAME=default"
    line: int
    comment: str  # the prose comment line right above, or ""


def env_example() -> dict[str, EnvEntry]:
    """The variables .env.example lists, set or commented out."""
    entries: dict[str, EnvEntry] = {}
    lines = ENV_EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        match = re.fullmatch(r"(# )?([A-Z][A-Z0-9_]*)=(.*)", line)
        if not match:
            continue
        above = lines[number - 1] if number else ""
        is_prose = above.startswith("#") and not re.match(r"# [A-Z][A-Z0-9_]*=", above)
        entries[match[2]] = EnvEntry(
            name=match[2],
            value=match[3],
            active=match[1] is None,
            line=number + 1,
            comment=above if is_prose else "",
        )
    return entries


def dotenv_values() -> dict[str, str]:
    """What docker compose reads from a .env copied verbatim from .env.example."""
    return {entry.name: entry.value for entry in env_example().values() if entry.active}


_SETTING_READ = re.compile(r"\benv(?:bool|int)?\(\s*\"([A-Z][A-Z0-9_]*)\"")
_ENVIRON_READ = re.compile(r"os\.(?:environ(?:\.get)?[(\[]|getenv\()\s*\"([A-Z][A-Z0-9_]*)\"")


def variables_read_by_the_code() -> dict[str, list[str]]:
    """Environment variables the platform reads, each with the files that read it."""
    found: dict[str, list[str]] = {}
    for source_root in ("platform", "connectors"):
        for path in sorted((ROOT / source_root).rglob("*.py")):
            text = path.read_text()
            for name in _SETTING_READ.findall(text) + _ENVIRON_READ.findall(text):
                found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    # The installed kinds declare theirs (connectors.base.EnvSetting); settings.py reads them.
    for dotted in settings.BUILTIN_CONNECTOR_KINDS:
        for env_setting in import_string(dotted).env:
            found.setdefault(env_setting.name, []).append(dotted)
    return found


@dataclass
class Instruction:
    keyword: str
    arguments: str
    stage: str


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions (continuation lines joined), each with its stage's name."""
    instructions: list[Instruction] = []
    logical = ""
    stage = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, arguments = logical.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage = arguments.split(" AS ")[-1].strip() if " AS " in arguments else arguments
        instructions.append(Instruction(keyword, arguments.strip(), stage))
        logical = ""
    return instructions


def exec_form(arguments: str) -> list[str]:
    """The argv of an exec-form CMD/HEALTHCHECK (JSON), or a shell-split shell form."""
    arguments = arguments.strip()
    if arguments.startswith("["):
        return json.loads(arguments)
    return shlex.split(arguments)


def service_command(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)
