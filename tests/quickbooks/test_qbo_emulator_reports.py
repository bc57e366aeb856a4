"""Reports: Intuit's shape, and numbers that agree with the stored data and with each other."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from connectors.quickbooks.transport import shared_ssl_context

ALL_TIME = {"start_date": "2000-01-01"}
REPORTS = (
    "ProfitAndLoss",
    "BalanceSheet",
    "CashFlow",
    "TrialBalance",
    "AgedReceivables",
    "AgedPayables",
)

TLS = shared_ssl_context()  # one CA bundle load for the whole module


@pytest.fixture
def api(qbo_emulator):
    qbo_emulator.emulator.configure(throttle_per_second=None)
    tokens = qbo_emulator.connect()
    with httpx.Client(
        verify=TLS,
        base_url=f"{qbo_emulator.base_url}/v3/company/{tokens['realmId']}",
        headers={"Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/json"},
        params={"minorversion": "75"},
    ) as client:
        yield client


@pytest.fixture
def today(qbo_emulator):
    return qbo_emulator.emulator.clock.now().date()


def report(api, name, **params):
    response = api.get(f"/reports/{name}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def all_of(api, entity):
    return api.get("/query", params={"query": f"SELECT * FROM {entity} MAXRESULTS 1000"}).json()[
        "QueryResponse"
    ][entity]


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def iter_rows(rows):
    for row in rows.get("Row", []):
        yield row
        if "Rows" in row:
            yield from iter_rows(row["Rows"])


def section(body, group):
    return next(r for r in iter_rows(body["Rows"]) if r.get("group") == group)


def summary(body, group, column=1) -> Decimal:
    return money(section(body, group)["Summary"]["ColData"][column]["value"])


def data_value(section_row, label, column=1) -> Decimal:
    for row in iter_rows(section_row.get("Rows", {})):
        if row.get("type") == "Data" and row["ColData"][0]["value"] == label:
            return money(row["ColData"][column]["value"] or 0)
    raise AssertionError(f"no row {label}")


@pytest.mark.parametrize("name", REPORTS)
def test_report_shape(api, name):
    body = report(api, name, **ALL_TIME)

    header = body["Header"]
    assert header["ReportName"] == name
    assert header["Currency"] == "USD" and header["Time"]
    columns = body["Columns"]["Column"]
    assert len(columns) >= 2 and all({"ColTitle", "ColType"} <= set(c) for c in columns)
    assert body["Rows"]["Row"]
    for row in iter_rows(body["Rows"]):
        assert row["type"] in ("Section", "Data")
        if row["type"] == "Section":
            assert len(row["Summary"]["ColData"]) == len(columns)
        else:
            assert len(row["ColData"]) == len(columns)


def test_profit_and_loss_accrual_matches_invoices_and_bills(api):
    invoices, bills = all_of(api, "Invoice"), all_of(api, "Bill")

    body = report(api, "ProfitAndLoss", accounting_method="Accrual", **ALL_TIME)

    income = sum(money(i["TotalAmt"]) for i in invoices)
    expenses = sum(money(b["TotalAmt"]) for b in bills)
    assert body["Header"]["ReportBasis"] == "Accrual"
    assert summary(body, "Income") == income
    assert summary(body, "Expenses") == expenses
    assert summary(body, "NetIncome") == income - expenses
    assert data_value(section(body, "Expenses"), "Rent or Lease") == Decimal("4800.00")


def test_profit_and_loss_cash_counts_money_received_and_paid(api):
    payments, bills = all_of(api, "Payment"), all_of(api, "Bill")

    body = report(api, "ProfitAndLoss", accounting_method="Cash", **ALL_TIME)

    received = sum(money(p["TotalAmt"]) for p in payments)
    paid = sum(money(b["TotalAmt"]) - money(b["Balance"]) for b in bills)
    assert body["Header"]["ReportBasis"] == "Cash"
    assert summary(body, "Income") == received
    assert summary(body, "NetIncome") == received - paid


def test_profit_and_loss_follows_the_period(api, today):
    invoices = all_of(api, "Invoice")
    start = sorted(i["TxnDate"] for i in invoices)[5]

    body = report(api, "ProfitAndLoss", start_date=start, end_date=today.isoformat())

    expected = sum(money(i["TotalAmt"]) for i in invoices if i["TxnDate"] >= start)
    assert summary(body, "Income") == expected


def test_balance_sheet_balances_and_matches_open_balances(api, today):
    invoices, bills = all_of(api, "Invoice"), all_of(api, "Bill")

    body = report(api, "BalanceSheet", end_date=today.isoformat())
    pnl_this_year = report(api, "ProfitAndLoss", start_date=f"{today.year}-01-01")

    assert summary(body, "TotalAssets") == summary(body, "TotalLiabilitiesAndEquity")
    assert summary(body, "AR") == sum(money(i["Balance"]) for i in invoices)
    assert summary(body, "AP") == sum(money(b["Balance"]) for b in bills)
    assert data_value(section(body, "Equity"), "Net Income") == summary(pnl_this_year, "NetIncome")
    assert data_value(section(body, "Equity"), "Opening Balance Equity") == Decimal("35000.00")


def test_new_invoice_moves_income_and_receivables_together(api, today):
    before_pnl = report(api, "ProfitAndLoss", **ALL_TIME)
    before_bs = report(api, "BalanceSheet")

    created = api.post(
        "/invoice",
        json={
            "CustomerRef": {"value": "1"},
            "TxnDate": today.isoformat(),
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 1000}],
        },
    )
    after_pnl = report(api, "ProfitAndLoss", **ALL_TIME)
    after_bs = report(api, "BalanceSheet")

    assert created.status_code == 200
    assert summary(after_pnl, "Income") - summary(before_pnl, "Income") == 1000
    assert summary(after_bs, "AR") - summary(before_bs, "AR") == 1000
    assert summary(after_bs, "TotalAssets") == summary(after_bs, "TotalLiabilitiesAndEquity")


@pytest.mark.parametrize("method", ["Accrual", "Cash"])
def test_trial_balance_debits_equal_credits(api, method):
    body = report(api, "TrialBalance", accounting_method=method)

    assert summary(body, "GrandTotal", 1) == summary(body, "GrandTotal", 2)
    assert summary(body, "GrandTotal", 1) > 0


@pytest.mark.parametrize("method", ["Accrual", "Cash"])
def test_cash_flow_ends_at_the_bank_balance(api, today, method):
    start = today.replace(day=1).isoformat()

    flow = report(
        api, "CashFlow", start_date=start, end_date=today.isoformat(), accounting_method=method
    )
    sheet = report(api, "BalanceSheet", end_date=today.isoformat(), accounting_method=method)
    sheet_before = report(
        api,
        "BalanceSheet",
        start_date="2000-01-01",
        end_date=_day_before(start),
        accounting_method=method,
    )

    assert summary(flow, "EndingCash") == summary(sheet, "BankAccounts")
    assert summary(flow, "BeginningCash") == summary(sheet_before, "BankAccounts")
    assert summary(flow, "EndingCash") - summary(flow, "BeginningCash") == summary(
        flow, "CashIncrease"
    )


def _day_before(iso_day: str) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(iso_day) - timedelta(days=1)).isoformat()


def test_aged_receivables_add_up_to_open_invoices(api, today):
    invoices = all_of(api, "Invoice")

    body = report(api, "AgedReceivables")

    open_total = sum(money(i["Balance"]) for i in invoices)
    assert summary(body, "GrandTotal", 6) == open_total
    columns = [c["ColTitle"] for c in body["Columns"]["Column"]]
    assert columns == ["", "Current", "1 - 30", "31 - 60", "61 - 90", "91 and over", "Total"]
    # The oldest unpaid invoice (due 100 days ago) sits in the last bucket.
    northwind = next(
        r
        for r in body["Rows"]["Row"]
        if r.get("ColData", [{}])[0].get("value") == "Northwind Cycling Club"
    )
    assert money(northwind["ColData"][5]["value"]) == Decimal("1800.00")
    assert body["Header"]["Option"][0] == {"Name": "report_date", "Value": today.isoformat()}


def test_aged_receivables_as_of_an_earlier_date_ignores_later_payments(api, today):
    invoices = all_of(api, "Invoice")
    payments = all_of(api, "Payment")
    latest_payment = max(payments, key=lambda p: p["TxnDate"])
    as_of = _day_before(latest_payment["TxnDate"])

    body = report(api, "AgedReceivables", report_date=as_of)

    expected = sum(money(i["Balance"]) for i in invoices if i["TxnDate"] <= as_of) + money(
        latest_payment["TotalAmt"]
    )
    assert summary(body, "GrandTotal", 6) == expected


def test_aged_payables_add_up_to_open_bills(api):
    bills = all_of(api, "Bill")

    body = report(api, "AgedPayables")

    assert summary(body, "GrandTotal", 6) == sum(money(b["Balance"]) for b in bills)
    assert body["Columns"]["Column"][0]["ColType"] == "Vendor"


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("GeneralLedgerDetailDetail", {}),
        ("ProfitAndLoss", {"start_date": "01/02/2025"}),
        ("ProfitAndLoss", {"start_date": "2025-02-01", "end_date": "2025-01-01"}),
        ("ProfitAndLoss", {"accounting_method": "Magic"}),
    ],
)
def test_bad_report_requests_are_validation_faults(api, name, params):
    response = api.get(f"/reports/{name}", params=params)

    assert response.status_code == 400
    assert response.json()["Fault"]["type"] == "ValidationFault"
