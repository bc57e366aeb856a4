"""Double-entry postings derived from a company's transactions; every report reads these.

Each transaction turns into postings that sum to zero (debits positive, credits negative), so
balance sheets balance and trial balances agree by construction:

    accrual  invoice:  Dr Accounts Receivable, Cr each line's income account
             payment:  Dr deposit account,      Cr Accounts Receivable
             bill:     Dr each line's expense,  Cr Accounts Payable (open part),
                                                Cr bank (part settled outside the emulator)
    cash     invoice:  nothing until paid
             payment:  Dr deposit account,      Cr the paid invoices' income accounts
                                                (pro rata), unapplied part to Uncategorized Income
             bill:     Dr expenses for the paid part, Cr bank
    both     opening balances: Dr the account, Cr Opening Balance Equity
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .company import Company

CENT = Decimal("0.01")
DEBIT_NORMAL = ("Asset", "Expense")


@dataclass(frozen=True)
class Posting:
    on: date
    account_id: str
    amount: Decimal  # debit positive, credit negative


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def _split(total: Decimal, weights: list[tuple[str, Decimal]]) -> list[tuple[str, Decimal]]:
    """Split `total` across accounts in proportion to weights, rounding into the last share."""
    weight_sum = sum((w for _, w in weights), Decimal(0))
    if not weights or weight_sum == 0:
        return []
    shares = []
    remaining = total
    for index, (account_id, weight) in enumerate(weights):
        if index == len(weights) - 1:
            share = remaining
        else:
            share = (total * weight / weight_sum).quantize(CENT)
        remaining -= share
        shares.append((account_id, share))
    return shares


def _income_weights(company: Company, invoice: dict[str, Any]) -> list[tuple[str, Decimal]]:
    weights = []
    for line in invoice["Line"]:
        if line["DetailType"] != "SalesItemLineDetail":
            continue
        item = company.objects["Item"][line["SalesItemLineDetail"]["ItemRef"]["value"]]
        weights.append((item["IncomeAccountRef"]["value"], _money(line["Amount"])))
    return weights


def _expense_weights(company: Company, bill: dict[str, Any]) -> list[tuple[str, Decimal]]:
    weights = []
    for line in bill["Line"]:
        if line["DetailType"] == "AccountBasedExpenseLineDetail":
            account_id = line["AccountBasedExpenseLineDetail"]["AccountRef"]["value"]
        else:
            item = company.objects["Item"][line["ItemBasedExpenseLineDetail"]["ItemRef"]["value"]]
            account_id = (item.get("ExpenseAccountRef") or {}).get("value") or (
                company.account_roles["cogs"]
            )
        weights.append((account_id, _money(line["Amount"])))
    return weights


def postings(company: Company, method: str) -> list[Posting]:
    """Every posting of the company under "Accrual" or "Cash" accounting."""
    roles = company.account_roles
    result: list[Posting] = []

    def post(on: str | date, account_id: str, amount: Decimal) -> None:
        if amount:
            day = on if isinstance(on, date) else date.fromisoformat(on)
            result.append(Posting(day, account_id, amount))

    for opening in company.opening_balances:
        post(opening.on, opening.account_id, opening.amount)
        post(opening.on, roles["opening_equity"], -opening.amount)

    cash_basis = method == "Cash"
    for invoice in company.objects["Invoice"].values():
        if cash_basis:
            continue
        post(invoice["TxnDate"], roles["ar"], _money(invoice["TotalAmt"]))
        for account_id, amount in _income_weights(company, invoice):
            post(invoice["TxnDate"], account_id, -amount)

    for payment in company.objects["Payment"].values():
        total = _money(payment["TotalAmt"])
        post(payment["TxnDate"], payment["DepositToAccountRef"]["value"], total)
        if not cash_basis:
            post(payment["TxnDate"], roles["ar"], -total)
            continue
        for line in payment["Line"]:
            invoice = company.objects["Invoice"][line["LinkedTxn"][0]["TxnId"]]
            for account_id, share in _split(
                _money(line["Amount"]), _income_weights(company, invoice)
            ):
                post(payment["TxnDate"], account_id, -share)
        post(payment["TxnDate"], roles["uncategorized_income"], -_money(payment["UnappliedAmt"]))

    for bill in company.objects["Bill"].values():
        total = _money(bill["TotalAmt"])
        paid = total - _money(bill["Balance"])
        if cash_basis:
            for account_id, share in _split(paid, _expense_weights(company, bill)):
                post(bill["TxnDate"], account_id, share)
        else:
            for account_id, amount in _expense_weights(company, bill):
                post(bill["TxnDate"], account_id, amount)
            post(bill["TxnDate"], roles["ap"], -_money(bill["Balance"]))
        post(bill["TxnDate"], roles["bank"], -paid)
    return result


def natural_sign(account: dict[str, Any]) -> int:
    """+1 for accounts that grow with debits (assets, expenses), -1 for the others."""
    return 1 if account["Classification"] in DEBIT_NORMAL else -1


def account_balances(
    company: Company,
    *,
    method: str,
    through: date | None,
    since: date | None = None,
    entries: list[Posting] | None = None,
) -> dict[str, Decimal]:
    """Per-account movement in [since, through] (open ends: all time), in natural sign."""
    totals: dict[str, Decimal] = {}
    for posting in entries if entries is not None else postings(company, method):
        if through is not None and posting.on > through:
            continue
        if since is not None and posting.on < since:
            continue
        totals[posting.account_id] = totals.get(posting.account_id, Decimal(0)) + posting.amount
    accounts = company.objects["Account"]
    return {
        account_id: amount * natural_sign(accounts[account_id])
        for account_id, amount in totals.items()
    }
