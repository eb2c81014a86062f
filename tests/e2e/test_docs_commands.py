"""Every command in docs/deploy.md and README.md matches a real CLI, and deploy.md's examples run.

Commands are read from the ```sh, ```bash, ```shell and ```console blocks (in a console block, the lines
that start with "$ "), one shell line at a time, split at ``&&``, ``||``, ``;``, ``|`` and ``$(...)``.
For each command of:

- ``sam``: each subcommand (``sam list stack-outputs`` too) is listed by its parent's ``--help``, and every
  flag appears in ``.venv-sam/bin/sam <sub> --help``; each ``--parameter-overrides`` key is a parameter
  of template.yaml; and SAM's own click parser accepts the whole line (values of choices included);
- ``make``: ``make -n`` accepts the targets, and each ``VAR=value`` names a variable of the Makefile;
- ``workflows``: every flag appears in ``workflows <sub> --help``, and the whole line parses (the console
  script's parser, ``framework.cli.parser``, called in-process);
- ``aws``: ``aws <service> <operation> help`` exists and lists every flag (AWS CLI v1: v2 is not on PyPI);
- ``awscurl`` and ``curl``: every flag appears in ``awscurl --help`` or ``curl --help all``.

In deploy.md a command of any other program (``export`` aside) fails the test; in the README, other
programs are left alone. awscli and awscurl are not dependencies of the project: they are installed once,
pinned, into ``.venv-docs/env`` (gitignored; about 7 s with uv on the first run). ``sam`` and ``aws``
take about 2 s per help page, so help pages of those pinned CLIs are also cached in ``.venv-docs/help``,
keyed by the CLI's version; failed lookups are never cached.

Relative links in the README, the CHANGELOG and docs/ must resolve, anchors included, and nothing in them
may lead outside the repository (a web link, or a path that climbs out of it). The Python blocks
of deploy.md run: the workflow module and ``WorkflowClient`` on a local stack (in-process moto), and the
SigV4 snippet, with the awscurl and curl commands, against a server on 127.0.0.1 that checks each
request's signature.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import hmac
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from examples.approval import expense_approval
from framework import cli
from framework.api.registry import REGISTRY, load_modules
from framework.backends import environment
from framework.local import LocalRuntime
from framework.local.template import parse_template

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy.md"
README = ROOT / "README.md"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
CACHE = ROOT / ".venv-docs"
PINNED = ("awscli==1.46.3", "awscurl==0.44")
TEMPLATE = parse_template((ROOT / "template.yaml").read_text())
CHECKED = {"sam", "make", "aws", "awscurl", "curl", "workflows"}
BUILTINS = {"export"}
SHELL_BLOCKS = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
OPERATORS = set(";&|()")
HELP_TIMEOUT = 120


# -- reading commands out of the docs -------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    where: str  # "docs/deploy.md:57"
    line: str  # the shell line it came from, continuations joined
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.argv)}"


def shell_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, shell line) of every shell block, with backslash continuations joined."""
    text = path.read_text()
    found = []
    for block in FENCE.finditer(text):
        if block.group(1) not in SHELL_BLOCKS:
            continue
        first = text.count("\n", 0, block.start(2)) + 1
        lines = block.group(2).splitlines()
        index = 0
        while index < len(lines):
            number, line = first + index, lines[index]
            index += 1
            if block.group(1) == "console":
                if not line.startswith("$ "):
                    continue  # output
                line = line[2:]
            while line.endswith("\\") and index < len(lines):
                line = line[:-1] + " " + lines[index].strip()
                index += 1
            if line.strip():
                found.append((number, line))
    return found


def split_commands(line: str) -> list[list[str]]:
    """The simple commands of one shell line, leading ``NAME=value`` assignments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    skip = False
    for token in lexer:
        if skip:
            skip = False
        elif token and set(token) <= set("<>"):
            skip = True  # a redirection and its target
            if commands[-1] and commands[-1][-1].isdigit():
                commands[-1].pop()  # the 2 of 2>file
        elif token and set(token) <= OPERATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    result = []
    for words in commands:
        start = 0
        while start < len(words) and ASSIGNMENT.match(words[start]):
            start += 1
        if words[start:]:
            result.append(words[start:])
    return result


def commands_in(path: Path) -> list[Command]:
    where = path.relative_to(ROOT)
    return [
        Command(f"{where}:{number}", line, tuple(argv))
        for number, line in shell_lines(path)
        for argv in split_commands(line)
    ]


DEPLOY_COMMANDS = commands_in(DEPLOY)
README_COMMANDS = [c for c in commands_in(README) if Path(c.argv[0]).name in CHECKED]


# -- help pages, cached ---------------------------------------------------------------------------------
def _sam_version() -> str:
    found = sorted(SAM.parents[1].glob("lib/python*/site-packages/aws_sam_cli-*.dist-info"))
    return found[-1].name.removesuffix(".dist-info") if found else "unknown"


class Helps:
    """Help texts by argv: computed once per session, and kept on disk for the pinned CLIs."""

    def __init__(self, tools: Path) -> None:
        self.tools = tools
        self._memory: dict[tuple[str, ...], tuple[int, str]] = {}
        self._locks: dict[tuple[str, ...], threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()
        self.disk = {"sam": _sam_version(), "aws": PINNED[0], "awscurl": PINNED[1]}

    def get(self, argv: tuple[str, ...]) -> tuple[int, str]:
        """(exit status, output) of ``argv``: a help command."""
        with self._guard:
            lock = self._locks[argv]
        with lock:
            if argv not in self._memory:
                self._memory[argv] = self._load(argv)
            return self._memory[argv]

    def _load(self, argv: tuple[str, ...]) -> tuple[int, str]:
        version = self.disk.get(argv[0])
        path = None
        if version is not None:
            digest = hashlib.sha256(json.dumps(argv).encode()).hexdigest()[:20]
            path = CACHE / "help" / version / f"{digest}.json"
            if path.exists():
                saved = json.loads(path.read_text())
                if saved["argv"] == list(argv):
                    return 0, str(saved["text"])
        rc, text = self._run(argv)
        if path is not None and rc == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}")
            temporary.write_text(json.dumps({"argv": list(argv), "text": text}))
            temporary.replace(path)
        return rc, text

    def sam_parse(self, argvs: list[tuple[str, ...]]) -> dict[tuple[str, ...], str | None]:
        """What SAM's own click parser says of each ``sam`` argv: None, or its error. One process for all
        the argvs not yet on disk (about 5 s); the verdicts are kept, keyed by SAM's version and by
        infra/samconfig.toml, which the parser reads."""
        config = hashlib.sha256((ROOT / "infra" / "samconfig.toml").read_bytes()).hexdigest()[:12]
        folder = CACHE / "sam-parse" / f"{self.disk['sam']}-{config}"

        def where(argv: tuple[str, ...]) -> Path:
            return folder / f"{hashlib.sha256(json.dumps(argv).encode()).hexdigest()[:20]}.json"

        with self._guard:
            lock = self._locks[("sam-parse",)]
        with lock:
            todo = sorted({a for a in argvs if not where(a).exists()})
            if todo:
                run = subprocess.run(
                    [str(SAM.parent / "python"), "-c", SAM_PARSER],
                    input=json.dumps([list(a[1:]) for a in todo]),
                    cwd=ROOT,
                    env=dict(os.environ, SAM_CLI_TELEMETRY="0"),
                    capture_output=True,
                    text=True,
                    timeout=HELP_TIMEOUT,
                    check=False,
                )
                assert run.returncode == 0, run.stderr[-3000:]
                folder.mkdir(parents=True, exist_ok=True)
                for argv, problem in zip(todo, json.loads(run.stdout.splitlines()[-1]), strict=True):
                    where(argv).write_text(json.dumps({"argv": list(argv), "problem": problem}))
            verdicts = {a: json.loads(where(a).read_text()) for a in argvs}
        return {a: v["problem"] for a, v in verdicts.items() if v["argv"] == list(a)}

    def _run(self, argv: tuple[str, ...]) -> tuple[int, str]:
        program = {
            "sam": str(SAM),
            "aws": str(self.tools / "aws"),
            "awscurl": str(self.tools / "awscurl"),
        }.get(argv[0], argv[0])
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        env |= {"SAM_CLI_TELEMETRY": "0", "PAGER": "cat", "MANPAGER": "cat", "NO_COLOR": "1"}
        run = subprocess.run(
            [program, *argv[1:]],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=HELP_TIMEOUT,
            check=False,
        )
        # aws renders its help with groff, which makes bold text with backspaces.
        return run.returncode, re.sub(".\x08", "", run.stdout + run.stderr)


# Run by .venv-sam/bin/python: parse each argv as `sam` would, without running the command.
SAM_PARSER = """
import json, sys
import click
from samcli.cli.main import cli

out = []
for argv in json.load(sys.stdin):
    try:
        ctx = cli.make_context("sam", list(argv))
        cmd, args = cli, [*getattr(ctx, "protected_args", []), *ctx.args]
        while isinstance(cmd, click.Group):
            name, cmd, args = cmd.resolve_command(ctx, args)
            ctx = cmd.make_context(name, args, parent=ctx)
            args = [*getattr(ctx, "protected_args", []), *ctx.args]
        out.append(None)
    except click.ClickException as exc:
        out.append(exc.format_message())
print(json.dumps(out))
"""


def mentions(text: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def flags_of(args: tuple[str, ...] | list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if re.match(r"--?[A-Za-z]", a)]


def missing_flags(args: tuple[str, ...] | list[str], help_text: str, what: str) -> list[str]:
    return [f"{what} has no option {flag}" for flag in flags_of(args) if not mentions(help_text, flag)]


def listed_commands(help_text: str) -> set[str]:
    """The subcommands in a click help page's "Commands:" section."""
    names: set[str] = set()
    inside = False
    for line in help_text.splitlines():
        if line.strip() == "Commands:":
            inside = True
        elif inside and line and not line[0].isspace():
            break
        elif inside and (match := re.match(r"\s+([a-z][a-z0-9-]*)(\s{2,}|$)", line)):
            names.add(match.group(1))
    return names


# -- checking one command -------------------------------------------------------------------------------
def check_sam(args: tuple[str, ...], helps: Helps) -> list[str]:
    path: list[str] = []
    rest = list(args)
    while rest and not rest[0].startswith("-"):
        rc, text = helps.get(("sam", *path, "--help"))
        assert rc == 0, text
        if rest[0] not in listed_commands(text):
            break
        path.append(rest.pop(0))
    if not path:
        return [f"sam has no command {args[0] if args else ''!r}"]
    rc, text = helps.get(("sam", *path, "--help"))
    if rest and not rest[0].startswith("-") and listed_commands(text):
        return [f"sam {' '.join(path)} has no command {rest[0]!r}"]
    problems = missing_flags(rest, text, f"sam {' '.join(path)}")
    if "--parameter-overrides" in rest:
        parameters = set(TEMPLATE["Parameters"])
        for value in rest[rest.index("--parameter-overrides") + 1 :]:
            if value.startswith("-"):
                break
            key = value.split("=", 1)[0]
            if key not in parameters:
                problems.append(f"--parameter-overrides: {key!r} is not a parameter of template.yaml")
    if not problems:
        parsed = helps.sam_parse([("sam", *args)])[("sam", *args)]
        if parsed is not None:
            problems.append(f"sam does not parse it: {parsed}")
    return problems


def check_make(args: tuple[str, ...], helps: Helps) -> list[str]:
    makefile = (ROOT / "Makefile").read_text()
    problems = []
    for arg in args:
        if ASSIGNMENT.match(arg):
            name = arg.split("=", 1)[0]
            if not re.search(rf"(^{name}\s*[?:+]?=|\$\({name}\))", makefile, re.MULTILINE):
                problems.append(f"the Makefile has no variable {name}")
    rc, text = helps.get(("make", "--help"))
    problems += missing_flags(args, text, "make")
    rc, text = helps.get(("make", "-n", "--no-print-directory", *args))
    if rc != 0:
        problems.append(f"make -n {shlex.join(args)} failed: {text.strip()[-300:]}")
    return problems


def _workflows_subcommands() -> dict[str, argparse.ArgumentParser]:
    root = cli.parser()
    action = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def check_workflows(args: tuple[str, ...], helps: Helps) -> list[str]:
    subcommands = _workflows_subcommands()
    if not args or args[0] not in subcommands:
        return [f"workflows has no command {args[0] if args else ''!r}"]
    problems = missing_flags(args[1:], subcommands[args[0]].format_help(), f"workflows {args[0]}")
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            cli.parser().parse_args(list(args))
    except SystemExit:
        last = (errors.getvalue().strip().splitlines() or [""])[-1]
        problems.append(f"workflows does not parse it: {last}")
    return problems


def check_aws(args: tuple[str, ...], helps: Helps) -> list[str]:
    positional = [a for a in args[:2] if not a.startswith("-")]
    if len(positional) < 2:
        return ["aws needs a service and an operation"]
    rc, text = helps.get(("aws", *positional, "help"))
    if rc != 0:
        last = (text.strip().splitlines() or [""])[-1]
        return [f"aws {' '.join(positional)}: no such command ({last})"]
    return missing_flags(args[2:], text, f"aws {' '.join(positional)}")


def check_awscurl(args: tuple[str, ...], helps: Helps) -> list[str]:
    rc, text = helps.get(("awscurl", "--help"))
    assert rc == 0, text
    return missing_flags(args, text, "awscurl")


def check_curl(args: tuple[str, ...], helps: Helps) -> list[str]:
    rc, text = helps.get(("curl", "--help", "all"))
    assert rc == 0, text
    return missing_flags(args, text, "curl")


CHECKS: dict[str, Callable[[tuple[str, ...], Helps], list[str]]] = {
    "sam": check_sam,
    "make": check_make,
    "workflows": check_workflows,
    "aws": check_aws,
    "awscurl": check_awscurl,
    "curl": check_curl,
}


def check(argv: tuple[str, ...], helps: Helps) -> list[str]:
    program, args = Path(argv[0]).name, argv[1:]  # .venv/bin/workflows is workflows
    if program in BUILTINS:
        return []
    if program not in CHECKS:
        return [f"{program!r} is not a CLI this test knows how to check"]
    return CHECKS[program](args, helps)


# Commands that are wrong in one way each, and the problem that the check must report.
WRONG = [
    ("sam deploy --guidded --config-file infra/samconfig.toml", "sam deploy has no option --guidded"),
    ("sam deplyo --guided", "sam has no command 'deplyo'"),
    ("sam list stack-output --stack-name x", "sam list has no command 'stack-output'"),
    ("sam deploy --parameter-overrides WorkflowModule=x", "'WorkflowModule' is not a parameter"),
    ("make deplyo", "make -n deplyo failed"),
    ("make build WORKFLOW_PACKAGE=examples", "the Makefile has no variable WORKFLOW_PACKAGE"),
    ("workflows start order --parmas {}", "workflows start has no option --parmas"),
    ("workflows strat order", "workflows has no command 'strat'"),
    ("workflows event exp-1", "workflows does not parse it"),
    ("aws dynamodb delete-table --tabel-name t", "aws dynamodb delete-table has no option --tabel-name"),
    ("aws s3 rb s3://b --froce", "aws s3 rb has no option --froce"),
    ("awscurl --servic execute-api https://x", "awscurl has no option --servic"),
    ("curl --hedaer x https://x", "curl has no option --hedaer"),
    ("sam list stack-outputs --stack-name x --output tabel", "'tabel' is not one of"),
    ("python3 -m http.server", "'python3' is not a CLI this test knows how to check"),
]


# -- fixtures -------------------------------------------------------------------------------------------
def _install_tools() -> Path:
    """awscli and awscurl, pinned, in .venv-docs/env: made once, then reused."""
    env_dir = CACHE / "env"
    stamp = env_dir / ".installed"
    CACHE.mkdir(exist_ok=True)
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == " ".join(PINNED):
            return env_dir / "bin"
        shutil.rmtree(env_dir, ignore_errors=True)
        uv = Path(sys.executable).parent / "uv"
        if uv.exists():
            steps = [
                [str(uv), "venv", "-q", "--python", sys.executable, str(env_dir)],
                [str(uv), "pip", "install", "-q", "--python", str(env_dir / "bin" / "python"), *PINNED],
            ]
        else:
            steps = [
                [sys.executable, "-m", "venv", str(env_dir)],
                [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", *PINNED],
            ]
        for step in steps:
            run = subprocess.run(step, capture_output=True, text=True, timeout=300, check=False)
            if run.returncode != 0:
                pytest.fail(f"could not install {' '.join(PINNED)} (needs PyPI once): {run.stderr[-2000:]}")
        stamp.write_text(" ".join(PINNED))
    return env_dir / "bin"


@pytest.fixture(scope="session")
def tools() -> Path:
    return _install_tools()


@pytest.fixture(scope="session")
def helps(request: pytest.FixtureRequest) -> Helps:
    if not SAM.exists():
        pytest.skip(".venv-sam is missing: run `make validate` (or `make lint`) to install the SAM CLI")
    return Helps(request.getfixturevalue("tools"))


@pytest.fixture(scope="session")
def verdicts(helps: Helps) -> dict[Command, list[str]]:
    """Every command's problems, computed in parallel: the help pages are the slow part."""
    commands = DEPLOY_COMMANDS + README_COMMANDS
    wrong = [tuple(argv) for line, _ in WRONG for argv in split_commands(line)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        # One SAM process parses every sam line, the wrong ones of test_a_wrong_command_is_caught too.
        sam = [a for a in [c.argv for c in commands] + wrong if Path(a[0]).name == "sam"]
        pool.submit(helps.sam_parse, [("sam", *a[1:]) for a in sam])
        # workflows runs in-process (argparse writes to the shared stderr): leave it to the main thread.
        futures = {
            c: pool.submit(check, c.argv, helps) for c in commands if not c.argv[0].endswith("workflows")
        }
    results = {c: f.result() for c, f in futures.items()}
    for command in commands:
        if command not in results:
            results[command] = check(command.argv, helps)
    return results


# -- the command tests ----------------------------------------------------------------------------------
def test_the_docs_have_commands_of_every_kind() -> None:
    programs = {c.argv[0] for c in DEPLOY_COMMANDS}
    assert {"sam", "make", "aws", "awscurl"} <= programs, programs
    assert any(Path(c.argv[0]).name == "workflows" for c in README_COMMANDS)


@pytest.mark.parametrize("command", DEPLOY_COMMANDS + README_COMMANDS, ids=str)
def test_command_matches_a_real_cli(command: Command, verdicts: dict[Command, list[str]]) -> None:
    assert not verdicts[command], f"{command}:\n  " + "\n  ".join(verdicts[command])


@pytest.mark.parametrize(("line", "problem"), WRONG)
def test_a_wrong_command_is_caught(line: str, problem: str, verdicts: Any, helps: Helps) -> None:
    (argv,) = split_commands(line)
    problems = check(tuple(argv), helps)
    assert any(problem in p for p in problems), problems


def test_shell_lines_are_split_into_commands() -> None:
    line = "export A=$(aws sts get-caller-identity --query \"x[?a=='b']\") && sam build 2>/dev/null | cat"
    assert split_commands(line) == [
        ["export", "A=$"],
        ["aws", "sts", "get-caller-identity", "--query", "x[?a=='b']"],
        ["sam", "build"],
        ["cat"],
    ]
    assert split_commands("WORKFLOW_PACKAGES=a,b sam build  # a comment") == [["sam", "build"]]


# -- the tables of deploy.md against template.yaml ------------------------------------------------------
def table(heading: str) -> list[list[str]]:
    section = DEPLOY.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows[1:]]


def test_the_parameter_table_matches_the_template() -> None:
    documented = {row[0].strip("`"): row[1] for row in table("Parameters")}
    expected = {
        name: f"`{spec['Default']}`" if spec["Default"] != "" else '`""`'
        for name, spec in TEMPLATE["Parameters"].items()
    }
    assert documented == expected


def test_the_output_table_matches_the_template() -> None:
    assert [row[0].strip("`") for row in table("Outputs")] == list(TEMPLATE["Outputs"])


def _headings(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    text = FENCE.sub("", path.read_text())
    return {
        re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        for m in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE)
    }


DOCS = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
ANY_FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.MULTILINE | re.DOTALL)  # in a list item too
CODE_SPAN = re.compile(r"`[^`\n]*`")
WEB_LINK = re.compile(r"https?://|www\.|\]\(\s*<?[a-z][a-z0-9+.-]*:|^\[[^\]\n]+\]:\s*\S", re.I | re.M)
PARENT_PATH = re.compile(r"(?<![.\w/])((?:\.\./)+[^\s)`'\"\]]*)")


def escaping(source: Path, text: str) -> list[str]:
    """What in ``text`` (the Markdown of ``source``) leads outside the repository: a web link or
    reference in the prose (a link, an autolink, a bare URL that GitHub links, a reference definition;
    a URL in code is a value, such as the local API's address), and a relative path, in a link or in
    code, that climbs out of the repository or names nothing in it (``../shared/...`` written from
    docs/ means a sibling of the repository)."""
    found = []
    prose = CODE_SPAN.sub("", ANY_FENCE.sub("", text))
    found += [f"{source.name}: {prose[m.start() : m.start() + 60]!r}" for m in WEB_LINK.finditer(prose)]
    for match in PARENT_PATH.finditer(text):
        path = (source.parent / match.group(1).partition("#")[0]).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():  # out, or a sibling of it meant
            found.append(f"{source.name}: {match.group(1)}")
    return found


def test_the_docs_stand_alone() -> None:
    """Nothing in the docs leads outside the repository: another site or a sibling directory is
    cited by name, in the text."""
    assert [found for source in DOCS for found in escaping(source, source.read_text())] == []


def test_what_leads_outside_the_repository_is_found() -> None:
    source = ROOT / "docs" / "x.md"
    assert (
        escaping(source, "see [the README](../README.md), `.../<lease owner>` and `http://127.0.0.1`") == []
    )
    found = [
        "[a](https://example.com)",
        "<https://example.com>",
        "see www.example.com",
        "[a]: https://example.com",
        "[a](mailto:someone)",
        "the model (`../shared/cost-model.md`)",
        "[the notes](../../notes.md)",
        "```\ncat ../../outside.txt\n```\n",
    ]
    assert [len(escaping(source, text)) for text in found] == [1] * len(found)


def test_the_links_of_the_docs_resolve() -> None:
    """Relative links (docs/deployment.md became docs/deploy.md): the file exists, and so does the anchor."""
    broken = []
    for source in DOCS:
        for match in re.finditer(r"\]\(([^)\s]+)\)", FENCE.sub("", source.read_text())):
            target = match.group(1)
            if re.match(r"[a-z]+:", target):
                continue
            name, _, fragment = target.partition("#")
            path = (source.parent / name) if name else source
            if not path.exists() or (fragment and path.suffix == ".md" and fragment not in _headings(path)):
                broken.append(f"{source.relative_to(ROOT)}: {target}")
    assert not broken


# -- running deploy.md's examples -----------------------------------------------------------------------
def python_block(marker: str) -> str:
    blocks = [b.group(2) for b in FENCE.finditer(DEPLOY.read_text()) if b.group(1) == "python"]
    (block,) = [b for b in blocks if marker in b]
    return block


def test_every_python_block_is_run_here() -> None:
    blocks = [b.group(2) for b in FENCE.finditer(DEPLOY.read_text()) if b.group(1) == "python"]
    markers = ("@workflow(", "SigV4Auth", "WorkflowClient.from_env()")
    assert len(blocks) == len(markers)
    assert all(sum(m in b for m in markers) == 1 for b in blocks)


def run_python(code: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_workflow_module_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "my_workflows"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "orders.py").write_text(python_block("@workflow("))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(REGISTRY, "_workflows", dict(REGISTRY._workflows))  # restored afterwards
    for name in ("my_workflows", "my_workflows.orders"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    load_modules("my_workflows.orders")  # what the functions do with WORKFLOW_MODULES
    with LocalRuntime(workflows=[REGISTRY.get("order")]) as rt:
        inst = rt.client.create("order", params={"order_id": "o-1", "amount": 9.5}, id="o-1")
        rt.advance("2 hours")
        status = inst.status()
        assert status.status == "complete", status
        assert status.output == {"order": "o-1", "charged": 9.5}
        assert [e.name for e in inst.history()] == ["charge", "cool-off", "ship"]
    for name in ("my_workflows", "my_workflows.orders"):
        sys.modules.pop(name, None)


def test_the_workflow_client_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(environment, "_clients", {})  # the snippet's boto3 clients die with the test
    with LocalRuntime(workflows=[expense_approval]) as rt:
        for name, value in {
            "WORKFLOWS_TABLE": rt.table_name,
            "WORKFLOWS_QUEUE_URL": rt.queue_url,
            "WORKFLOWS_BUCKET": rt.bucket_name,
            "WORKFLOW_MODULES": "examples.approval",
        }.items():
            monkeypatch.setenv(name, value)
        exec(compile(python_block("WorkflowClient.from_env()"), "docs/deploy.md", "exec"), {})
        assert capsys.readouterr().out.strip() == "queued"
        assert rt.client.get("exp-1").status().workflow == "expense-approval"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = field(repr=False)


@pytest.fixture
def api() -> Iterator[tuple[str, list[Received]]]:
    """A stand-in for the HTTP API on 127.0.0.1 that records each request."""
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            received.append(Received(self.command, self.path, headers, body))
            status, answer = (201, {"id": "exp-1", "status": "queued"}) if body else (200, {"id": "exp-1"})
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_problem(request: Received, secret: str = "testing") -> str | None:
    """Recompute the request's SigV4 signature independently of the signer. None if it is right."""
    match = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
        r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
        request.headers.get("authorization", ""),
    )
    if match is None:
        return f"not a SigV4 Authorization header: {request.headers.get('authorization')!r}"
    _, date, region, service, signed, signature = match.groups()
    if "x-amz-date" not in request.headers or "host" not in signed.split(";"):
        return "no X-Amz-Date header, or the host is not signed"
    path, _, query = request.path.partition("?")
    canonical = "\n".join(
        [
            request.method,
            path,
            "&".join(sorted(query.split("&"))) if query else "",
            "".join(f"{h}:{' '.join(request.headers[h].split())}\n" for h in signed.split(";")),
            signed,
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            request.headers["x-amz-date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), date), region), service), "aws4_request")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, signature) else "the signature does not match"


def client_env(api_url: str, tools: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, API_URL=api_url, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env["PYTHONPATH"] = str(ROOT)
    if tools is not None:
        env["PATH"] = f"{tools}{os.pathsep}{env['PATH']}"
    return env


def assert_signed(request: Received) -> None:
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/us-east-1/execute-api/aws4_request" in request.headers["authorization"]
    assert request.headers["x-amz-security-token"] == "testing"
    assert sigv4_problem(request) is None, sigv4_problem(request)


def test_the_sigv4_snippet_signs_its_request(api: tuple[str, list[Received]]) -> None:
    url, received = api
    result = run_python(python_block("SigV4Auth"), client_env(url))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "201 {'id': 'exp-1', 'status': 'queued'}"
    (request,) = received
    assert (request.method, request.path) == ("POST", "/workflows/expense-approval/instances")
    assert json.loads(request.body) == {"id": "exp-1", "params": {"employee": "ana", "amount": 12.5}}
    assert request.headers["x-amz-date"]
    assert_signed(request)


def test_the_awscurl_and_curl_commands_send_what_they_should(
    api: tuple[str, list[Received]], tools: Path
) -> None:
    url, received = api
    lines = {c.line for c in DEPLOY_COMMANDS if c.argv[0] in ("awscurl", "curl")}
    assert len(lines) == 3
    for line in sorted(lines):
        run = subprocess.run(
            ["bash", "-c", f"set -euo pipefail; {line}"],
            env=client_env(url, tools) | {"TOKEN": "header.payload.signature"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, f"{line}\n{run.stderr[-2000:]}"
    signed = [r for r in received if r.headers["authorization"].startswith("AWS4")]
    bearer = [r for r in received if r.headers["authorization"].startswith("Bearer ")]
    assert sorted((r.method, r.path) for r in signed) == [
        ("GET", "/instances/exp-1"),
        ("POST", "/workflows/expense-approval/instances"),
    ]
    for request in signed:
        assert_signed(request)
    (jwt,) = bearer
    assert jwt.headers["authorization"] == "Bearer header.payload.signature"


def test_the_signature_check_can_fail() -> None:
    body = b'{"id": "exp-1"}'
    signing = AWSRequest(method="POST", url="http://127.0.0.1:9/instances", data=body, headers={})
    SigV4Auth(Credentials("testing", "testing", "testing"), "execute-api", "us-east-1").add_auth(signing)
    headers = {k.lower(): v for k, v in signing.headers.items()} | {"host": "127.0.0.1:9"}
    request = Received("POST", "/instances", headers, body)
    assert sigv4_problem(request) is None
    tampered = Received("POST", "/instances", headers, body.replace(b"exp-1", b"exp-2"))
    assert sigv4_problem(tampered) == "the signature does not match"
    assert sigv4_problem(Received("POST", "/other", headers, body)) == "the signature does not match"
    assert sigv4_problem(request, secret="other") == "the signature does not match"
    unsigned = Received("POST", "/instances", {"host": "x"}, body)
    assert (sigv4_problem(unsigned) or "").startswith("not a SigV4 Authorization header")
