"""The Dockerfile built outside Docker, the way a builder runs it, into a folder.

No Docker engine is needed: the Dockerfile's instructions (deploy_files.dockerfile) are carried
out in order on an image root under a temporary folder. ARG and ENV set the variables the
following steps see, WORKDIR their folder, COPY copies from the build context (what
.dockerignore leaves of the repository) or from an earlier stage, and RUN runs the command with
``/bin/sh -c`` there. Paths of the image (``/app``...) are folders under the root.

What the base image (``python:*-slim``) provides comes from this machine: its Python (the one
this test runs on), and its system tools, as shims that record their calls instead of changing
the machine (``pip`` installing the pinned uv, whose copy here is used; ``groupadd``,
``useradd``, ``chown``). Every stage shares the root: the runtime stage's ``COPY --from=build
/app /app`` then copies a folder onto itself, and the venv's scripts keep working.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.deploy.deploy_files import DOCKERIGNORE, ROOT, dockerfile, exec_form

# The base image's system tools: recorded (one line of argv per call), never run here.
SHIMS = ("pip", "groupadd", "useradd", "chown")
BASE_PYTHON = "/usr/local/bin/python3"  # python:*-slim's interpreter
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # and its PATH


class BuildFailed(AssertionError):
    pass


class ImageBuild:
    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.shims = root.parent / f"{root.name}-shims"
        self.calls_log = self.shims / "calls.log"
        self.env: dict[str, str] = {}  # the final stage's ENV
        self.workdir = "/"
        self.user = "root"
        self.cmd: list[str] = []
        self.healthcheck: list[str] = []
        self._make_shims()

    # --- paths -------------------------------------------------------------------------------
    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def translate(self, text: str) -> str:
        """An image's text (a command, an ENV value) with its paths under the root."""
        text = text.replace(BASE_PYTHON, sys._base_executable)
        return re.sub(r"(?<![\w./-])/app(?=/|\b)", str(self.path("/app")), text)

    def calls(self) -> list[list[str]]:
        """The base image's tools as the steps called them."""
        if not self.calls_log.exists():
            return []
        return [shlex.split(line) for line in self.calls_log.read_text().splitlines()]

    # --- the build ---------------------------------------------------------------------------
    def build(self) -> ImageBuild:
        global_args: dict[str, str] = {}  # ARGs before the first FROM
        args: dict[str, str] | None = None  # the stage's, once a FROM began one
        env: dict[str, str] = {}
        for instruction in dockerfile():
            keyword, arguments = instruction.keyword, instruction.arguments
            if keyword == "ARG":
                name, has_default, default = arguments.partition("=")
                if args is None:
                    global_args[name] = default
                else:  # a global ARG re-declared without a value keeps the global default
                    args[name] = default if has_default else global_args.get(name, "")
            elif keyword == "FROM":
                # A new stage: the base image's environment and WORKDIR /, no ARG values.
                args, env, self.workdir = {}, {"PATH": BASE_PATH}, "/"
            elif keyword == "ENV":
                for word in shlex.split(arguments):
                    name, _, value = word.partition("=")
                    env[name] = self._expand(value, {**(args or {}), **env})
            elif keyword == "WORKDIR":
                self.workdir = self._expand(arguments, {**(args or {}), **env})
                self.path(self.workdir).mkdir(parents=True, exist_ok=True)
            elif keyword == "COPY":
                self._copy(arguments)
            elif keyword == "RUN":
                self._run(arguments, args or {}, env)
            elif keyword == "USER":
                self.user = arguments
            elif keyword == "CMD":
                self.cmd = exec_form(arguments)
            elif keyword == "HEALTHCHECK":
                self.healthcheck = exec_form(arguments.split(" CMD ", 1)[1])
            elif keyword not in ("LABEL", "EXPOSE"):
                raise BuildFailed(f"this builder does not know {keyword}")
        self.env = env
        return self

    def _expand(self, text: str, variables: dict[str, str]) -> str:
        def value(match: re.Match) -> str:
            return variables.get(match[1] or match[2], "")

        return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)

    def _ignored(self, relative: str) -> bool:
        patterns = [
            line.strip()
            for line in DOCKERIGNORE.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        ignored = False
        for pattern in patterns:  # the last matching pattern decides, as Docker's
            negated = pattern.startswith("!")
            pattern = pattern.lstrip("!")
            candidates = {pattern, pattern.removeprefix("**/")}
            parts = Path(relative).parts
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            names = prefixes + list(parts) if pattern.startswith("**/") else prefixes
            if any(fnmatch.fnmatch(name, c) for name in names for c in candidates):
                ignored = not negated
        return ignored

    def _copy(self, arguments: str) -> None:
        words = shlex.split(arguments)
        source_stage = None
        if words[0].startswith("--from="):
            source_stage = words.pop(0).split("=", 1)[1]
        *sources, destination = words
        target = self.path(os.path.join(self.workdir, destination))
        for source in sources:
            if source_stage is not None:
                origin = self.path(source)  # every stage shares the root
                if origin.resolve() == target.resolve():
                    continue
            else:
                origin = ROOT / source
                if not origin.exists() or self._ignored(source):
                    raise BuildFailed(f"COPY {source}: not in the build context")
            if origin.is_dir():
                shutil.copytree(
                    origin,
                    target,
                    dirs_exist_ok=True,
                    ignore=lambda folder, names: [
                        n
                        for n in names
                        if source_stage is None
                        and self._ignored(str((Path(folder) / n).relative_to(ROOT)))
                    ],
                )
            else:
                destination_path = target / origin.name if destination.endswith("/") else target
                destination_path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, destination_path)

    def _run(self, command: str, args: dict[str, str], env: dict[str, str]) -> None:
        variables = {**args, **{k: self.translate(v) for k, v in env.items()}}
        # The base image's tools: the shims, and uv where the pinned pip install put it.
        uv = Path(shutil.which("uv")).parent
        variables["PATH"] = os.pathsep.join([str(self.shims), str(uv), variables["PATH"]])
        variables["HOME"] = str(self.root / "root")
        # Packages come from this machine's uv cache, never the network: a build here is offline.
        variables["UV_OFFLINE"] = "1"
        # How files land in the venv changes no behaviour, only the time: link them from the
        # cache and leave the bytecode to the first import (the image compiles it all).
        variables["UV_LINK_MODE"] = "hardlink"
        variables["UV_COMPILE_BYTECODE"] = "0"
        if "UV_CACHE_DIR" in os.environ:
            variables["UV_CACHE_DIR"] = os.environ["UV_CACHE_DIR"]
        else:  # the machine's uv cache: nothing is downloaded again
            variables["UV_CACHE_DIR"] = subprocess.run(
                ["uv", "cache", "dir"], capture_output=True, text=True, check=True
            ).stdout.strip()
        result = subprocess.run(
            ["/bin/sh", "-c", self.translate(command)],
            cwd=self.path(self.workdir),
            env=variables,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise BuildFailed(
                f"RUN {command}\nexited {result.returncode}:\n{result.stdout[-3000:]}"
                f"\n{result.stderr[-3000:]}"
            )

    def _make_shims(self) -> None:
        self.shims.mkdir(parents=True, exist_ok=True)
        for tool in SHIMS:
            shim = self.shims / tool
            shim.write_text(
                "#!/bin/sh\n"
                f'printf "%s" {shlex.quote(tool)} >> "{self.calls_log}"\n'
                f'for arg in "$@"; do printf " \'%s\'" "$arg" >> "{self.calls_log}"; done\n'
                f'echo >> "{self.calls_log}"\n'
            )
            shim.chmod(0o755)
