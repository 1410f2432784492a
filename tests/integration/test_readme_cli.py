"""The README's `ledger` commands work as written: the tour, a shop's day with the Wallet service and the
operator commands, run in order against a served ledger, each `# → …` comment checked against what the
command printed (… stands for anything), and `(exit N)` against its exit code; the Python snippets of the
tour and of the shop's day too, and the history shown in the tour."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from .test_cli_ops import Cli, Served, columns

README = Path(__file__).resolve().parents[2] / "README.md"
WALLET = "## A shop's day with the Wallet service"
SECTIONS = ("## A tour", WALLET, "## Operator commands")
NOT_RUN = ("ledger serve", "ledger keys", "ledger audit")
"""Commands of those sections this test does not run: the server is already served; keys and the audit take
a store (tests/integration/test_audit.py runs the audit's commands)."""


def section(name: str) -> str:
    text = README.read_text()
    start = text.index(name)
    end = text.find("\n## ", start + len(name))
    return text[start : end if end >= 0 else None]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def commands(name: str) -> list[tuple[str, str | None, int]]:
    """(command, the output it should print or None, its exit code) of every `ledger` line of a section."""
    found = []
    for block in blocks(section(name), "sh"):
        for line in block.splitlines():
            if not line.startswith("ledger ") or line.startswith(NOT_RUN):
                continue
            command, _, comment = line.partition("#")
            expected = None
            exit_code = 0
            if comment.strip().startswith("→"):
                expected = comment.strip().removeprefix("→").strip()
                if (match := re.search(r"\s*\(exit (\d)\)$", expected)) is not None:
                    exit_code = int(match[1])
                    expected = expected[: match.start()]
            found.append((command.strip(), expected, exit_code))
    return found


def said(expected: str) -> re.Pattern[str]:
    """`expected` as a pattern: … is anything, runs of spaces are any run of spaces."""
    parts = [r"\s+".join(map(re.escape, piece.split())) for piece in expected.split("…")]
    return re.compile(".*?".join(parts))


def run(cli: Cli, command: str) -> tuple[int, str, str]:
    argv = shlex.split(command)[1:]
    if "--server" in argv:
        argv[argv.index("--server") + 1] = cli.server
        return cli(*argv, server=False)
    return cli(*argv)


def run_section(cli: Cli, name: str) -> dict[str, str]:
    """Run the section's commands in order, checking each; what each printed on stdout."""
    outputs: dict[str, str] = {}
    for command, expected, exit_code in commands(name):
        code, out, err = run(cli, command)
        assert code == exit_code, (command, out, err)
        if expected is not None:
            wanted = said(expected.replace("127.0.0.1:7100", cli.server))
            assert wanted.match((out or err).strip()), (command, expected, out, err)
        outputs.setdefault(command, out)
    return outputs


def test_the_readme_commands_work_as_written(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # where `export … statement.csv` writes
    listed = [command for name in SECTIONS for command in commands(name)]
    assert len(listed) >= 25 and sum(expected is not None for _, expected, _ in listed) >= 15
    with Served(store_url) as served:
        cli = Cli(served, capsys)
        outputs = run_section(cli, "## A tour")
        # The tour's history, as the README shows it (but for the times).
        shown = blocks(section("## A tour"), "text")[0]
        printed = outputs["ledger history 2 --currency EUR"]
        assert printed.splitlines()[0].split() == shown.splitlines()[0].split()
        assert [row[1:] for row in columns(printed)] == [row[1:] for row in columns(shown)]
        # The tour's Python client, next, against the same ledger.
        [snippet] = blocks(section("## A tour"), "python")
        exec(snippet.replace("127.0.0.1:7100", cli.server), {"__name__": "readme"})
        printed_lines = capsys.readouterr().out.splitlines()
        balance = re.search(r"print\(wallet\.credits_posted - wallet\.debits_posted\)\s+# (\d+)", snippet)
        assert balance is not None and printed_lines[-1] == balance[1]
        assert "CreateTransferResult.OK" in printed_lines[0] and "CreateTransferResult.EXISTS" in printed_lines[1]
        # A shop's day: its commands, then its Python against the same ledger, each print as its comment says.
        run_section(cli, WALLET)
        [snippet] = blocks(section(WALLET), "python")
        exec(snippet.replace("127.0.0.1:7100", cli.server), {"__name__": "readme"})
        expected = [
            comment.split(":")[0] for comment in re.findall(r"^\s+print\(.*\)\s+# (.*)$", snippet, re.MULTILINE)
        ]
        assert len(expected) == 3 and capsys.readouterr().out.splitlines() == expected
        run_section(cli, "## Operator commands")
    assert (tmp_path / "statement.csv").exists()
