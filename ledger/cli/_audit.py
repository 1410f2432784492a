"""`ledger audit`: check a store's journal without trusting the ledger's process, and print a verdict.

Exit codes: 0 the journal is clean, 1 it is not (the first problem is named:
commit or checkpoint seq, and the record), 3 the store cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Final

from ledger.audit import JournalUnreadable, Verdict, audit, open_journal
from ledger.config import LedgerConfig

from ._csv import add_progress_option, progress
from ._export import shown_on
from ._keys import STORE_HELP
from ._ops import EXIT_CALL_FAILED, EXIT_FAILED_ITEMS, Commands

EXIT_CLEAN: Final = 0


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "audit",
        help="check the journal on its own: checksums, sequence, ordinals, every balance recomputed (read-only)",
        description="Replay the store's journal without the ledger's code (read-only, safe beside a running server) "
        "and print a verdict. Exit codes: 0 clean, 1 a problem (named with its commit or checkpoint seq and record), "
        "3 the store cannot be read.",
    )
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument("--json", action="store_true", help="print JSON for machines instead of lines for people")
    add_progress_option(parser)
    parser.set_defaults(run=_audit)


def _audit(args: argparse.Namespace) -> int:
    try:
        journal = open_journal(LedgerConfig.from_env(store=args.store).store_url)
    except (JournalUnreadable, ValueError) as exc:
        print(f"ledger audit: {exc}", file=sys.stderr)
        return EXIT_CALL_FAILED
    try:
        with progress(args, journal.extent().transfers_count, "audit") as bar:
            verdict = audit(journal, progress=shown_on(bar))
    except JournalUnreadable as exc:
        print(f"ledger audit: {exc}", file=sys.stderr)
        return EXIT_CALL_FAILED
    finally:
        journal.close()
    if args.json:
        print(json.dumps(verdict_document(verdict)))
    else:
        print("\n".join(verdict_lines(verdict)))
    return EXIT_CLEAN if verdict.clean else EXIT_FAILED_ITEMS


def verdict_document(verdict: Verdict) -> dict[str, Any]:
    tally = verdict.tally
    problem = verdict.problem
    return {
        "store": verdict.store,
        "clean": verdict.clean,
        "problem": None
        if problem is None
        else {"what": problem.what, "seq": problem.seq, "record": problem.record, "message": problem.message},
        "seq_last": verdict.seq_last,
        "accounts": tally.accounts,
        "transfers": tally.transfers,
        "holds": {"total": tally.holds, **dict(tally.resolved), "open": tally.holds - sum(tally.resolved.values())},
        "balancing": tally.balancing,
        "linked": tally.linked,
        "closing": tally.closing,
        "balance_entries": tally.balance_entries,
        "domain": {"commits": tally.domain_commits, "bytes": tally.domain_bytes},
        "checkpoints": verdict.checkpoints,
        "transfer_ids": verdict.transfer_ids,
        "ledgers": {
            str(ledger): {
                "accounts": t.accounts,
                "debits_pending": t.debits_pending,
                "debits_posted": t.debits_posted,
                "credits_pending": t.credits_pending,
                "credits_posted": t.credits_posted,
                "holds_open": t.holds_open,
            }
            for ledger, t in sorted(verdict.ledgers.items())
        },
        "seconds": round(verdict.seconds, 3),
    }


def verdict_lines(verdict: Verdict) -> list[str]:
    tally = verdict.tally
    resolved = ", ".join(f"{count} {name}" for name, count in sorted(tally.resolved.items()))
    open_holds = tally.holds - sum(tally.resolved.values())
    checked = "checked" if verdict.clean else "checked before it"
    checkpoints = ", ".join(f"seq={seq}" for seq in verdict.checkpoints) or "none stored"
    lines = [
        f"journal {verdict.store}: " + ("clean" if verdict.problem is None else f"FAILED at {verdict.problem}"),
        f"  {checked}: "
        + (f"commits 1 to {verdict.seq_last}" if verdict.seq_last else "no commits")
        + " (checksums, sequence, record ordinals, timestamps)",
        f"  {tally.accounts} accounts, {tally.transfers} transfers: {tally.holds} holds "
        f"({resolved + ', ' if resolved else ''}{open_holds} open), {tally.balancing} balancing, "
        f"{tally.linked} linked, {tally.closing} closing",
        f"  {tally.balance_entries} balance-history entries agree with the transfers",
        f"  checkpoints that agree with the journal: {checkpoints}",
        f"  stored transfer ids that agree with the journal: {verdict.transfer_ids}",
    ]
    if tally.domain_commits:
        lines.append(
            f"  domain records: {tally.domain_bytes} bytes in {tally.domain_commits} commits "
            "(checksums only: the journal does not read them)"
        )
    for ledger, t in sorted(verdict.ledgers.items()):
        lines.append(
            f"  ledger {ledger}: {t.accounts} accounts, debits = credits: posted {t.debits_posted}, "
            f"pending {t.debits_pending} (open holds {t.holds_open})"
            if verdict.clean
            else f"  ledger {ledger} up to there: {t.accounts} accounts, posted debits {t.debits_posted}, "
            f"credits {t.credits_posted}, pending debits {t.debits_pending}, credits {t.credits_pending}"
        )
    lines.append(f"  read in {verdict.seconds:.2f} s")
    return lines
