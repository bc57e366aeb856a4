"""The read tools over real HTTP (platform, then the emulator), checked against the emulator's
own books: the seeded company, not just "something came back"."""

from datetime import UTC, datetime, timedelta

import pytest

from connectors.quickbooks.emulator.seed import ACCOUNTS, CUSTOMERS, VENDORS
from tests.support.quickbooks import call, list_tools

pytestmark = pytest.mark.django_db(transaction=True)

READ_TOOLS = {
    "connection_status",
    "company_info",
    "query",
    "get_record",
    "find_customers",
    "find_vendors",
    "list_invoices",
    "list_bills",
    "chart_of_accounts",
    "profit_and_loss",
    "balance_sheet",
    "cash_flow",
    "trial_balance",
    "aged_receivables",
    "aged_payables",
}


def books(ctx):
    """The emulator's company behind this connector."""
    return ctx["emulator"].company(ctx["issued"]["realmId"])


def ok(result):
    assert not result["isError"], result["content"][0]["text"]
    return result["structuredContent"]


def test_read_tools_are_listed_with_schemas_and_read_only_annotations(qbo_connector):
    tools = list_tools(qbo_connector)
    assert set(tools) == READ_TOOLS
    for name, tool in tools.items():
        assert tool["annotations"]["readOnlyHint"] is True, name
        assert tool["annotations"]["openWorldHint"] is True, name
        assert tool["description"].strip(), name
        assert tool["outputSchema"]["type"] == "object", name
    listing = tools["list_invoices"]["inputSchema"]["properties"]
    assert listing["status"]["enum"] == ["open", "overdue", "paid", "all"]
    assert "YYYY-MM-DD" in listing["date_from"]["description"]
    assert tools["get_record"]["inputSchema"]["required"] == ["entity", "id"]


def test_company_info_and_get_record_return_the_seeded_records(qbo_connector):
    ctx = qbo_connector
    company = books(ctx)
    info = ok(call(ctx, "company_info"))
    assert info["CompanyName"] == company.name
    assert info["CompanyAddr"]["City"] == "Portland"

    customer = company.all("Customer")[3]
    record = ok(call(ctx, "get_record", {"entity": "Customer", "id": customer["Id"]}))
    assert record["record"]["DisplayName"] == customer["DisplayName"] == "Maya Patel"
    assert record["sync_token"] == customer["SyncToken"]

    missing = call(ctx, "get_record", {"entity": "Invoice", "id": "99999"})
    assert missing["isError"]
    assert "not found" in missing["content"][0]["text"].lower()


def test_find_customers_and_vendors_by_partial_name(qbo_connector):
    ctx = qbo_connector
    found = ok(call(ctx, "find_customers", {"name": "bakery"}))
    assert [m["display_name"] for m in found["matches"]] == ["Harbor Street Bakery"]
    bakery = next(
        c for c in books(ctx).all("Customer") if c["DisplayName"] == "Harbor Street Bakery"
    )
    match = found["matches"][0]
    assert match["id"] == bakery["Id"]
    assert match["email"] == "orders@harborbakery.example"
    assert match["balance"] == bakery["Balance"] > 0

    # "&" and a quote reach Intuit as literal text: the quote escaped, not a query error.
    found = ok(call(ctx, "find_customers", {"name": "Oak & Ember"}))
    assert [m["display_name"] for m in found["matches"]] == ["Oak & Ember Restaurant"]
    found = ok(call(ctx, "find_customers", {"name": "O'Brien"}))
    assert found["matches"] == []

    vendors = ok(call(ctx, "find_vendors", {"name": "cpa"}))
    assert [m["display_name"] for m in vendors["matches"]] == ["Kline & Associates CPAs"]
    assert vendors["matches"][0]["balance"] == 750.0


def test_find_customers_pages_through_every_customer_in_name_order(qbo_connector):
    ctx = qbo_connector
    first = ok(call(ctx, "find_customers", {"max_results": 4}))
    assert first["returned"] == 4 and first["next_start_position"] == 5
    second = ok(call(ctx, "find_customers", {"start_position": 5, "max_results": 4}))
    assert second["returned"] == 2 and second["next_start_position"] is None
    names = [m["display_name"] for m in first["matches"] + second["matches"]]
    assert names == sorted((c[0] for c in CUSTOMERS), key=str.lower)


def test_list_invoices_filters_by_status_customer_and_date(qbo_connector):
    ctx = qbo_connector
    invoices = books(ctx).all("Invoice")
    today = datetime.now(UTC).date()

    def ids(arguments):
        result = ok(call(ctx, "list_invoices", {"max_results": 100, **arguments}))
        assert result["returned"] == len(result["invoices"])
        return {invoice["id"] for invoice in result["invoices"]}, result["invoices"]

    every, rows = ids({})
    assert every == {i["Id"] for i in invoices} and len(every) == 10
    assert [r["txn_date"] for r in rows] == sorted((r["txn_date"] for r in rows), reverse=True)
    first = next(r for r in rows if r["id"] == invoices[0]["Id"])
    assert first["total"] == invoices[0]["TotalAmt"] == 1500.0
    assert first["customer"] == {"id": invoices[0]["CustomerRef"]["value"], "name": CUSTOMERS[0][0]}

    paid, _ = ids({"status": "paid"})
    open_, _ = ids({"status": "open"})
    overdue, overdue_rows = ids({"status": "overdue"})
    assert paid == {i["Id"] for i in invoices if i["Balance"] == 0} and len(paid) == 2
    assert open_ == every - paid
    assert overdue == {
        i["Id"] for i in invoices if i["Balance"] > 0 and i["DueDate"] < today.isoformat()
    }
    assert overdue and overdue < open_
    assert {r["status"] for r in overdue_rows} == {"overdue"}

    customer_id = invoices[0]["CustomerRef"]["value"]
    theirs, _ = ids({"customer_id": customer_id})
    assert theirs == {i["Id"] for i in invoices if i["CustomerRef"]["value"] == customer_id}
    assert len(theirs) == 2

    start = (today - timedelta(days=50)).isoformat()
    end = (today - timedelta(days=20)).isoformat()
    window, _ = ids({"date_from": start, "date_to": end})
    assert window == {i["Id"] for i in invoices if start <= i["TxnDate"] <= end}
    assert 0 < len(window) < 10

    backwards = call(ctx, "list_invoices", {"date_from": end, "date_to": start})
    assert backwards["isError"] and "after" in backwards["content"][0]["text"]
    bad_date = call(ctx, "list_invoices", {"date_from": "31/01/2025"})
    assert bad_date["isError"]


def test_list_invoices_pages_without_gaps_or_repeats(qbo_connector):
    ctx = qbo_connector
    seen, start, pages = [], 1, 0
    while start is not None:
        page = ok(call(ctx, "list_invoices", {"start_position": start, "max_results": 3}))
        seen += [invoice["id"] for invoice in page["invoices"]]
        start, pages = page["next_start_position"], pages + 1
    assert pages == 4
    assert sorted(seen) == sorted(i["Id"] for i in books(ctx).all("Invoice"))


def test_list_bills_and_the_chart_of_accounts(qbo_connector):
    ctx = qbo_connector
    company = books(ctx)
    bills = ok(call(ctx, "list_bills", {"status": "open"}))["bills"]
    assert {b["id"] for b in bills} == {b["Id"] for b in company.all("Bill") if b["Balance"] > 0}
    assert sorted(b["total"] for b in bills) == [186.2, 310.45, 750.0, 1250.0]
    rent = next(v for v in company.all("Vendor") if v["DisplayName"] == VENDORS[1][0])
    paid = ok(call(ctx, "list_bills", {"vendor_id": rent["Id"], "status": "paid"}))["bills"]
    assert [b["total"] for b in paid] == [2400.0, 2400.0]
    assert all(b["vendor"]["name"] == "Cornerstone Properties" for b in paid)

    accounts = ok(call(ctx, "chart_of_accounts"))["accounts"]
    assert [a["name"] for a in accounts] == sorted((a[0] for a in ACCOUNTS), key=str.lower)
    banks = ok(call(ctx, "chart_of_accounts", {"account_type": "Bank"}))["accounts"]
    stored = {a["Id"]: a for a in company.all("Account")}
    assert [b["name"] for b in banks] == ["Checking", "Savings"]
    for bank in banks:
        assert bank["current_balance"] == stored[bank["id"]]["CurrentBalance"]
        assert bank["classification"] == "Asset"
    savings = next(b for b in banks if b["name"] == "Savings")
    assert savings["current_balance"] == 10000.0


def test_query_counts_and_pages(qbo_connector):
    ctx = qbo_connector
    count = ok(call(ctx, "query", {"query": "SELECT count(*) FROM Item"}))
    assert count["total_count"] == 5
    page = ok(call(ctx, "query", {"query": "SELECT * FROM Item ORDERBY Name", "max_results": 2}))
    assert [row["Name"] for row in page["rows"]] == ["Consulting", "Design"]
    assert page["next_start_position"] == 3
