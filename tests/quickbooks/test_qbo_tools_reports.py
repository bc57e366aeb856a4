"""Report tools: Intuit's nested reports flattened, and numbers that agree across reports and
with the open invoices and bills the list tools show."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.quickbooks import call

pytestmark = pytest.mark.django_db(transaction=True)


def ok(result):
    assert not result["isError"], result["content"][0]["text"]
    return result["structuredContent"]


def row(report, label, section=None):
    matches = [
        r
        for r in report["rows"]
        if r["label"] == label and (section is None or r["section"] == section)
    ]
    assert len(matches) == 1, (label, section, matches)
    return matches[0]


@pytest.mark.parametrize("method", ["Accrual", "Cash"])
def test_financial_statements_agree_with_each_other(qbo_connector, method):
    ctx = qbo_connector
    arguments = {"accounting_method": method}
    pnl = ok(call(ctx, "profit_and_loss", arguments))
    sheet = ok(call(ctx, "balance_sheet", arguments))
    trial = ok(call(ctx, "trial_balance", arguments))
    cash = ok(call(ctx, "cash_flow", arguments))

    today = datetime.now(UTC).date()
    assert pnl["report"] == "ProfitAndLoss" and pnl["basis"] == method
    assert pnl["end_date"] == today.isoformat()
    assert pnl["start_date"] == today.replace(month=1, day=1).isoformat()
    assert pnl["label_column"] == "Account" and pnl["columns"] == ["Total"]

    # The balance sheet balances, and its current-year earnings are the P&L's net income.
    assert sheet["totals"]["TotalAssets"] == sheet["totals"]["TotalLiabilitiesAndEquity"]
    equity = ["LIABILITIES AND EQUITY", "Equity"]
    assert row(sheet, "Net Income", equity)["values"] == pnl["totals"]["NetIncome"]
    # Rows carry their section path and the Id of their account.
    checking = row(sheet, "Checking", ["ASSETS", "Current Assets", "Bank Accounts"])
    assert checking["kind"] == "data" and checking["id"]
    assert sum(
        r["values"][0]
        for r in sheet["rows"]
        if r["kind"] == "data" and r["section"][:2] == ["ASSETS", "Current Assets"]
    ) == pytest.approx(sheet["totals"]["CurrentAssets"][0])

    # Debits equal credits; cash at the end of the year so far is what the banks hold.
    assert trial["columns"] == ["Debit", "Credit"]
    debits, credits = trial["totals"]["GrandTotal"]
    assert debits == credits > 0
    assert cash["totals"]["EndingCash"] == sheet["totals"]["BankAccounts"]
    assert cash["totals"]["BeginningCash"][0] + cash["totals"]["CashIncrease"][0] == (
        pytest.approx(cash["totals"]["EndingCash"][0])
    )


def test_aging_reports_add_up_to_the_open_invoices_and_bills(qbo_connector):
    ctx = qbo_connector
    receivables = ok(call(ctx, "aged_receivables"))
    payables = ok(call(ctx, "aged_payables"))
    open_invoices = ok(call(ctx, "list_invoices", {"status": "open"}))["invoices"]
    open_bills = ok(call(ctx, "list_bills", {"status": "open"}))["bills"]

    assert receivables["columns"] == [
        "Current",
        "1 - 30",
        "31 - 60",
        "61 - 90",
        "91 and over",
        "Total",
    ]
    assert receivables["label_column"] == "Customer"
    total = receivables["totals"]["GrandTotal"][-1]
    assert total == pytest.approx(sum(i["balance"] for i in open_invoices))
    for customer in {i["customer"]["id"] for i in open_invoices}:
        owed = sum(i["balance"] for i in open_invoices if i["customer"]["id"] == customer)
        line = next(r for r in receivables["rows"] if r["id"] == customer)
        assert line["values"][-1] == pytest.approx(owed)
    assert (
        payables["totals"]["GrandTotal"][-1]
        == pytest.approx(sum(b["balance"] for b in open_bills))
        == pytest.approx(2496.65)
    )
    # The Kline bill is 95 days old with 30-day terms: 65 days past due.
    kline = next(r for r in payables["rows"] if r["label"] == "Kline & Associates CPAs")
    assert kline["values"] == [None, None, None, 750.0, None, 750.0]

    # Before any invoice existed there was nothing to collect.
    past = (datetime.now(UTC).date() - timedelta(days=400)).isoformat()
    empty = ok(call(ctx, "aged_receivables", {"as_of_date": past}))
    assert empty["no_data"] and empty["totals"]["GrandTotal"][-1] == 0
    assert empty["as_of_date"] == past


def test_report_arguments_and_upstream_failures_are_tool_errors(qbo_connector):
    ctx = qbo_connector
    backwards = call(ctx, "profit_and_loss", {"start_date": "2025-03-01", "end_date": "2025-01-01"})
    assert (
        backwards["isError"] and "start_date is after end_date" in backwards["content"][0]["text"]
    )
    assert call(ctx, "profit_and_loss", {"accounting_method": "Modified"})["isError"]

    raw = ok(call(ctx, "balance_sheet", {"include_raw": True}))
    assert raw["raw"]["Header"]["ReportName"] == "BalanceSheet"
    assert ok(call(ctx, "balance_sheet"))["raw"] is None

    ctx["emulator"].inject_fault("report", status=503, count=3)
    failed = call(ctx, "cash_flow")
    assert failed["isError"]
    assert "try again" in failed["content"][0]["text"]
