"""Reports computed from the emulated books, in Intuit's Header / Columns / Rows shape.

The numbers are simple but consistent: every report reads the same postings (see ledger.py), so
net income matches between the profit and loss and the balance sheet, the balance sheet balances,
the trial balance's debits equal its credits, the cash flow ends at the bank balance, and the
aging reports add up to the open invoices and bills.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from . import faults
from .company import Company, money
from .faults import intuit_time
from .ledger import account_balances, natural_sign, postings

ZERO = Decimal(0)
AGING_COLUMNS = ("Current", "1 - 30", "31 - 60", "61 - 90", "91 and over")


@dataclass(frozen=True)
class ReportParams:
    start: date
    end: date
    method: str  # "Accrual" or "Cash"


def _parse_date(params: Mapping[str, str], name: str, default: date) -> date:
    value = params.get(name)
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise faults.invalid_value(name, f"{name} must be a date (YYYY-MM-DD)") from None


def parse_params(params: Mapping[str, str], today: date) -> ReportParams:
    """Intuit's defaults: this fiscal year to date (the fiscal year starts in January), accrual."""
    end = _parse_date(params, "end_date", today)
    start = _parse_date(params, "start_date", date(end.year, 1, 1))
    if start > end:
        raise faults.invalid_value("start_date", "start_date must not be after end_date")
    method = (params.get("accounting_method") or "Accrual").capitalize()
    if method not in ("Accrual", "Cash"):
        raise faults.invalid_value("accounting_method", "accounting_method is Cash or Accrual")
    return ReportParams(start, end, method)


# --- row builders -----------------------------------------------------------------------------


def _amount(value: Decimal) -> str:
    return f"{value:.2f}"


def _blank_if_zero(value: Decimal) -> str:
    return "" if value == 0 else _amount(value)


def _label(text: str, entity_id: str | None = None) -> dict[str, str]:
    return {"value": text, "id": entity_id} if entity_id else {"value": text}


def _data(label: dict[str, str], *values: str) -> dict[str, Any]:
    return {"ColData": [label, *({"value": v} for v in values)], "type": "Data"}


def _section(
    group: str,
    title: str | None,
    rows: list[dict[str, Any]],
    summary: str,
    *totals: str,
) -> dict[str, Any]:
    section: dict[str, Any] = {}
    if title is not None:
        section["Header"] = {"ColData": [{"value": title}, *({"value": ""} for _ in totals)]}
    if rows:
        section["Rows"] = {"Row": rows}
    section["Summary"] = {"ColData": [{"value": summary}, *({"value": t} for t in totals)]}
    section["type"] = "Section"
    section["group"] = group
    return section


def _columns(*columns: tuple[str, str]) -> dict[str, Any]:
    """Column headers from (title, type) pairs; the first column labels the rows."""
    result = []
    for index, (title, col_type) in enumerate(columns):
        key = col_type.lower() if index == 0 else title.lower().replace(" ", "_")
        result.append(
            {"ColTitle": title, "ColType": col_type, "MetaData": [{"Name": "ColKey", "Value": key}]}
        )
    return {"Column": result}


def _header(name: str, params: ReportParams, now: datetime, *, empty: bool) -> dict[str, Any]:
    return {
        "Time": intuit_time(now),
        "ReportName": name,
        "ReportBasis": params.method,
        "StartPeriod": params.start.isoformat(),
        "EndPeriod": params.end.isoformat(),
        "SummarizeColumnsBy": "Total",
        "Currency": "USD",
        "Option": [
            {"Name": "AccountingStandard", "Value": "GAAP"},
            {"Name": "NoReportData", "Value": "true" if empty else "false"},
        ],
    }


# --- account helpers --------------------------------------------------------------------------


def _accounts_of(company: Company, *types: str) -> list[dict[str, Any]]:
    accounts = [a for a in company.objects["Account"].values() if a["AccountType"] in types]
    return sorted(accounts, key=lambda a: a["Name"].lower())


def _account_rows(
    company: Company, balances: Mapping[str, Decimal], *types: str
) -> tuple[list[dict[str, Any]], Decimal]:
    rows, total = [], ZERO
    for account in _accounts_of(company, *types):
        amount = balances.get(account["Id"], ZERO)
        if amount:
            rows.append(_data(_label(account["Name"], account["Id"]), _amount(amount)))
            total += amount
    return rows, total


def _net_income(company: Company, balances: Mapping[str, Decimal]) -> Decimal:
    """Revenue minus expenses over whatever period `balances` covers."""
    result = ZERO
    for account_id, amount in balances.items():
        classification = company.objects["Account"][account_id]["Classification"]
        if classification == "Revenue":
            result += amount
        elif classification == "Expense":
            result -= amount
    return result


# --- reports ----------------------------------------------------------------------------------


def profit_and_loss(company: Company, params: ReportParams, now: datetime) -> dict[str, Any]:
    period = account_balances(company, method=params.method, since=params.start, through=params.end)
    income_rows, income = _account_rows(company, period, "Income")
    cogs_rows, cogs = _account_rows(company, period, "Cost of Goods Sold")
    expense_rows, expenses = _account_rows(company, period, "Expense")
    other_income_rows, other_income = _account_rows(company, period, "Other Income")
    other_expense_rows, other_expenses = _account_rows(company, period, "Other Expense")
    gross_profit = income - cogs
    net_operating_income = gross_profit - expenses
    net_income = net_operating_income + other_income - other_expenses
    rows = [
        _section("Income", "Income", income_rows, "Total Income", _amount(income)),
        _section(
            "COGS", "Cost of Goods Sold", cogs_rows, "Total Cost of Goods Sold", _amount(cogs)
        ),
        _section("GrossProfit", None, [], "Gross Profit", _amount(gross_profit)),
        _section("Expenses", "Expenses", expense_rows, "Total Expenses", _amount(expenses)),
        _section(
            "NetOperatingIncome", None, [], "Net Operating Income", _amount(net_operating_income)
        ),
    ]
    if other_income_rows or other_expense_rows:
        rows += [
            _section(
                "OtherIncome",
                "Other Income",
                other_income_rows,
                "Total Other Income",
                _amount(other_income),
            ),
            _section(
                "OtherExpenses",
                "Other Expenses",
                other_expense_rows,
                "Total Other Expenses",
                _amount(other_expenses),
            ),
            _section(
                "NetOtherIncome",
                None,
                [],
                "Net Other Income",
                _amount(other_income - other_expenses),
            ),
        ]
    rows.append(_section("NetIncome", None, [], "Net Income", _amount(net_income)))
    empty = not (income_rows or cogs_rows or expense_rows or other_income_rows)
    return {
        "Header": _header("ProfitAndLoss", params, now, empty=empty and not other_expense_rows),
        "Columns": _columns(("", "Account"), ("Total", "Money")),
        "Rows": {"Row": rows},
    }


def _retained_and_current_earnings(
    company: Company, params: ReportParams, entries: list
) -> tuple[Decimal, Decimal]:
    """(retained earnings before this fiscal year, net income this fiscal year to end date)."""
    fiscal_year_start = date(params.end.year, 1, 1)
    prior = account_balances(
        company,
        method=params.method,
        through=fiscal_year_start - timedelta(days=1),
        entries=entries,
    )
    current = account_balances(
        company, method=params.method, since=fiscal_year_start, through=params.end, entries=entries
    )
    return _net_income(company, prior), _net_income(company, current)


def balance_sheet(company: Company, params: ReportParams, now: datetime) -> dict[str, Any]:
    entries = postings(company, params.method)
    balances = account_balances(company, method=params.method, through=params.end, entries=entries)
    retained, net_income = _retained_and_current_earnings(company, params, entries)

    bank_rows, bank = _account_rows(company, balances, "Bank")
    ar_rows, ar = _account_rows(company, balances, "Accounts Receivable")
    oca_rows, other_current = _account_rows(company, balances, "Other Current Asset")
    fixed_rows, fixed = _account_rows(company, balances, "Fixed Asset")
    other_rows, other_assets = _account_rows(company, balances, "Other Asset")
    current_assets = bank + ar + other_current
    total_assets = current_assets + fixed + other_assets
    asset_sections = [
        _section(
            "CurrentAssets",
            "Current Assets",
            [
                _section(
                    "BankAccounts", "Bank Accounts", bank_rows, "Total Bank Accounts", _amount(bank)
                ),
                _section(
                    "AR", "Accounts Receivable", ar_rows, "Total Accounts Receivable", _amount(ar)
                ),
                _section(
                    "OtherCurrentAssets",
                    "Other Current Assets",
                    oca_rows,
                    "Total Other Current Assets",
                    _amount(other_current),
                ),
            ],
            "Total Current Assets",
            _amount(current_assets),
        )
    ]
    if fixed_rows:
        asset_sections.append(
            _section(
                "FixedAssets", "Fixed Assets", fixed_rows, "Total Fixed Assets", _amount(fixed)
            )
        )
    if other_rows:
        asset_sections.append(
            _section(
                "OtherAssets",
                "Other Assets",
                other_rows,
                "Total Other Assets",
                _amount(other_assets),
            )
        )

    ap_rows, ap = _account_rows(company, balances, "Accounts Payable")
    card_rows, cards = _account_rows(company, balances, "Credit Card")
    ocl_rows, other_liabilities = _account_rows(company, balances, "Other Current Liability")
    long_rows, long_term = _account_rows(company, balances, "Long Term Liability")
    current_liabilities = ap + cards + other_liabilities
    total_liabilities = current_liabilities + long_term
    current_liability_sections = [
        _section("AP", "Accounts Payable", ap_rows, "Total Accounts Payable", _amount(ap))
    ]
    if card_rows:
        current_liability_sections.append(
            _section("CreditCards", "Credit Cards", card_rows, "Total Credit Cards", _amount(cards))
        )
    if ocl_rows:
        current_liability_sections.append(
            _section(
                "OtherCurrentLiabilities",
                "Other Current Liabilities",
                ocl_rows,
                "Total Other Current Liabilities",
                _amount(other_liabilities),
            )
        )
    liability_sections = [
        _section(
            "CurrentLiabilities",
            "Current Liabilities",
            current_liability_sections,
            "Total Current Liabilities",
            _amount(current_liabilities),
        )
    ]
    if long_rows:
        liability_sections.append(
            _section(
                "LongTermLiabilities",
                "Long-Term Liabilities",
                long_rows,
                "Total Long-Term Liabilities",
                _amount(long_term),
            )
        )

    retained_id = company.account_roles["retained_earnings"]
    equity_rows, equity = [], ZERO
    for account in _accounts_of(company, "Equity"):
        amount = balances.get(account["Id"], ZERO)
        if account["Id"] == retained_id:
            amount += retained
        if amount:
            equity_rows.append(_data(_label(account["Name"], account["Id"]), _amount(amount)))
            equity += amount
    equity_rows.append(_data(_label("Net Income"), _amount(net_income)))
    equity += net_income

    rows = [
        _section("TotalAssets", "ASSETS", asset_sections, "TOTAL ASSETS", _amount(total_assets)),
        _section(
            "TotalLiabilitiesAndEquity",
            "LIABILITIES AND EQUITY",
            [
                _section(
                    "Liabilities",
                    "Liabilities",
                    liability_sections,
                    "Total Liabilities",
                    _amount(total_liabilities),
                ),
                _section("Equity", "Equity", equity_rows, "Total Equity", _amount(equity)),
            ],
            "TOTAL LIABILITIES AND EQUITY",
            _amount(total_liabilities + equity),
        ),
    ]
    return {
        "Header": _header("BalanceSheet", params, now, empty=not entries),
        "Columns": _columns(("", "Account"), ("Total", "Money")),
        "Rows": {"Row": rows},
    }


def cash_flow(company: Company, params: ReportParams, now: datetime) -> dict[str, Any]:
    """Indirect method: net income, then the movement of every non-cash balance-sheet account."""
    entries = postings(company, params.method)
    period = account_balances(
        company, method=params.method, since=params.start, through=params.end, entries=entries
    )
    before = account_balances(
        company,
        method=params.method,
        through=params.start - timedelta(days=1),
        entries=entries,
    )
    net_income = _net_income(company, period)

    def cash_effect_rows(*types: str) -> tuple[list[dict[str, Any]], Decimal]:
        # Cash moves against every other balance-sheet account: an asset that grows used cash,
        # a liability or equity that grows brought it in.
        rows, total = [], ZERO
        for account in _accounts_of(company, *types):
            movement = period.get(account["Id"], ZERO)
            effect = -movement * natural_sign(account)
            if effect:
                rows.append(_data(_label(account["Name"], account["Id"]), _amount(effect)))
                total += effect
        return rows, total

    adjustment_rows, adjustments = cash_effect_rows(
        "Accounts Receivable",
        "Other Current Asset",
        "Accounts Payable",
        "Credit Card",
        "Other Current Liability",
    )
    investing_rows, investing = cash_effect_rows("Fixed Asset", "Other Asset")
    financing_rows, financing = cash_effect_rows("Long Term Liability", "Equity")
    operating = net_income + adjustments
    increase = operating + investing + financing
    beginning_cash = sum((before.get(a["Id"], ZERO) for a in _accounts_of(company, "Bank")), ZERO)
    adjustments_title = "Adjustments to reconcile Net Income to Net Cash provided by operations:"
    rows = [
        _section(
            "OperatingActivities",
            "OPERATING ACTIVITIES",
            [
                _data(_label("Net Income"), _amount(net_income)),
                _section(
                    "OperatingAdjustments",
                    adjustments_title,
                    adjustment_rows,
                    f"Total {adjustments_title}",
                    _amount(adjustments),
                ),
            ],
            "Net cash provided by operating activities",
            _amount(operating),
        ),
        _section(
            "InvestingActivities",
            "INVESTING ACTIVITIES",
            investing_rows,
            "Net cash provided by investing activities",
            _amount(investing),
        ),
        _section(
            "FinancingActivities",
            "FINANCING ACTIVITIES",
            financing_rows,
            "Net cash provided by financing activities",
            _amount(financing),
        ),
        _section("CashIncrease", None, [], "NET CASH INCREASE FOR PERIOD", _amount(increase)),
        _section("BeginningCash", None, [], "Cash at beginning of period", _amount(beginning_cash)),
        _section(
            "EndingCash", None, [], "CASH AT END OF PERIOD", _amount(beginning_cash + increase)
        ),
    ]
    return {
        "Header": _header("CashFlow", params, now, empty=not period),
        "Columns": _columns(("", "Account"), ("Total", "Money")),
        "Rows": {"Row": rows},
    }


def trial_balance(company: Company, params: ReportParams, now: datetime) -> dict[str, Any]:
    """Balances at end date; income and expenses for this fiscal year, earlier ones retained."""
    entries = postings(company, params.method)
    cumulative = account_balances(
        company, method=params.method, through=params.end, entries=entries
    )
    this_year = account_balances(
        company,
        method=params.method,
        since=date(params.end.year, 1, 1),
        through=params.end,
        entries=entries,
    )
    retained, _ = _retained_and_current_earnings(company, params, entries)
    retained_id = company.account_roles["retained_earnings"]
    rows, total_debit, total_credit = [], ZERO, ZERO
    for account in sorted(company.objects["Account"].values(), key=lambda a: a["Name"].lower()):
        profit_or_loss = account["Classification"] in ("Revenue", "Expense")
        amount = (this_year if profit_or_loss else cumulative).get(account["Id"], ZERO)
        if account["Id"] == retained_id:
            amount += retained
        debit_balance = amount * natural_sign(account)
        if not debit_balance:
            continue
        debit = debit_balance if debit_balance > 0 else ZERO
        credit = -debit_balance if debit_balance < 0 else ZERO
        total_debit += debit
        total_credit += credit
        rows.append(
            _data(
                _label(account["Name"], account["Id"]),
                _blank_if_zero(debit),
                _blank_if_zero(credit),
            )
        )
    rows.append(
        _section("GrandTotal", None, [], "TOTAL", _amount(total_debit), _amount(total_credit))
    )
    return {
        "Header": _header("TrialBalance", params, now, empty=len(rows) == 1),
        "Columns": _columns(("", "Account"), ("Debit", "Money"), ("Credit", "Money")),
        "Rows": {"Row": rows},
    }


def _aging_bucket(days_past_due: int) -> int:
    if days_past_due <= 0:
        return 0
    if days_past_due <= 30:
        return 1
    if days_past_due <= 60:
        return 2
    if days_past_due <= 90:
        return 3
    return 4


def _aging_report(
    name: str,
    params: ReportParams,
    now: datetime,
    as_of: date,
    open_items: list[tuple[str, str, date, Decimal]],  # (party id, party name, due, open)
) -> dict[str, Any]:
    by_party: dict[tuple[str, str], list[Decimal]] = {}
    for party_id, party_name, due, open_amount in open_items:
        buckets = by_party.setdefault((party_name, party_id), [ZERO] * len(AGING_COLUMNS))
        buckets[_aging_bucket((as_of - due).days)] += open_amount
    rows = []
    totals = [ZERO] * len(AGING_COLUMNS)
    for (party_name, party_id), buckets in sorted(by_party.items(), key=lambda i: i[0][0].lower()):
        totals = [t + b for t, b in zip(totals, buckets, strict=True)]
        rows.append(
            _data(
                _label(party_name, party_id),
                *(_blank_if_zero(b) for b in buckets),
                _amount(sum(buckets, ZERO)),
            )
        )
    rows.append(
        _section(
            "GrandTotal",
            None,
            [],
            "TOTAL",
            *(_amount(t) for t in totals),
            _amount(sum(totals, ZERO)),
        )
    )
    header = _header(name, ReportParams(as_of, as_of, params.method), now, empty=not open_items)
    header["Option"].insert(0, {"Name": "report_date", "Value": as_of.isoformat()})
    columns = [("", "Customer" if name == "AgedReceivables" else "Vendor")]
    columns += [(title, "Money") for title in (*AGING_COLUMNS, "Total")]
    return {"Header": header, "Columns": _columns(*columns), "Rows": {"Row": rows}}


def aged_receivables(
    company: Company, params: ReportParams, now: datetime, as_of: date
) -> dict[str, Any]:
    """Open invoice amounts at `as_of` (payments dated after it do not count yet)."""
    paid: dict[str, Decimal] = {}
    for payment in company.objects["Payment"].values():
        if date.fromisoformat(payment["TxnDate"]) > as_of:
            continue
        for line in payment["Line"]:
            invoice_id = line["LinkedTxn"][0]["TxnId"]
            paid[invoice_id] = paid.get(invoice_id, ZERO) + money(line["Amount"])
    open_items = []
    for invoice in company.objects["Invoice"].values():
        if date.fromisoformat(invoice["TxnDate"]) > as_of:
            continue
        open_amount = money(invoice["TotalAmt"]) - paid.get(invoice["Id"], ZERO)
        if open_amount:
            ref = invoice["CustomerRef"]
            due = date.fromisoformat(invoice["DueDate"])
            open_items.append((ref["value"], ref["name"], due, open_amount))
    return _aging_report("AgedReceivables", params, now, as_of, open_items)


def aged_payables(
    company: Company, params: ReportParams, now: datetime, as_of: date
) -> dict[str, Any]:
    """Open bill amounts at `as_of`."""
    open_items = []
    for bill in company.objects["Bill"].values():
        if date.fromisoformat(bill["TxnDate"]) > as_of:
            continue
        open_amount = money(bill["Balance"])
        if open_amount:
            ref = bill["VendorRef"]
            due = date.fromisoformat(bill["DueDate"])
            open_items.append((ref["value"], ref["name"], due, open_amount))
    return _aging_report("AgedPayables", params, now, as_of, open_items)


_PERIOD_REPORTS: dict[str, Callable[[Company, ReportParams, datetime], dict[str, Any]]] = {
    "ProfitAndLoss": profit_and_loss,
    "BalanceSheet": balance_sheet,
    "CashFlow": cash_flow,
    "TrialBalance": trial_balance,
}
_AGING_REPORTS = {"AgedReceivables": aged_receivables, "AgedPayables": aged_payables}
REPORT_NAMES = (*_PERIOD_REPORTS, *_AGING_REPORTS)


def build_report(
    company: Company, name: str, query: Mapping[str, str], now: datetime
) -> dict[str, Any]:
    """Run report `name` with Intuit's query parameters."""
    today = now.date()
    params = parse_params(query, today)
    if name in _PERIOD_REPORTS:
        return _PERIOD_REPORTS[name](company, params, now)
    if name in _AGING_REPORTS:
        as_of = _parse_date(query, "report_date", _parse_date(query, "end_date", today))
        return _AGING_REPORTS[name](company, params, now, as_of)
    raise faults.invalid_value(
        "ReportName", f"Report {name} is not supported; supported: {', '.join(REPORT_NAMES)}"
    )
