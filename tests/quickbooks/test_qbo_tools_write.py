"""Write tools: present only where the connector allows writes, and what they do to the books
(over real HTTP, checked in the emulator), SyncToken conflicts and requestid idempotency."""

import pytest

from tenants.models import Connector
from tests.support.flow import OAuthClient
from tests.support.oauth import Browser
from tests.support.quickbooks import call, list_tools

pytestmark = pytest.mark.django_db(transaction=True)

WRITE_TOOLS = {
    "create_customer",
    "create_invoice",
    "record_payment",
    "create_bill",
    "update_record",
}


@pytest.fixture
def scoped(qbo_connector, live_url):
    """bob's connector with a token that has the write scope the write tools need (without it
    a call is answered 403 insufficient_scope: tests/authserver/test_step_up.py)."""
    client = OAuthClient.register(live_url)
    resource = qbo_connector["connector"].url
    tokens = client.tokens(Browser("bob", "bob-pass-123"), resource, scope="mcp quickbooks.write")
    return {**qbo_connector, "token": tokens["access_token"]}


@pytest.fixture
def writable(scoped):
    """The same connector with writes allowed in its settings."""
    Connector.objects.filter(pk=scoped["connector"].pk).update(settings={"writes_allowed": True})
    return scoped


def ok(result):
    assert not result["isError"], result["content"][0]["text"]
    return result["structuredContent"]


def books(ctx):
    return ctx["emulator"].company(ctx["issued"]["realmId"])


def customers_named(ctx, name):
    return [c for c in books(ctx).all("Customer") if c["DisplayName"] == name]


@pytest.mark.parametrize("token", ["mcp", "mcp quickbooks.write"])
def test_write_tools_are_hidden_and_refused_on_a_read_only_connector(qbo_connector, scoped, token):
    # Without the write scope too: the gate refuses, nobody is asked to step up for nothing.
    ctx = scoped if "quickbooks.write" in token else qbo_connector
    assert ctx["connector"].settings == {"writes_allowed": False}
    assert not WRITE_TOOLS & set(list_tools(ctx))
    writes_before = ctx["emulator"].counters["api.write"]
    for tool, arguments in (
        ("create_customer", {"display_name": "Sneaky Co"}),
        ("update_record", {"entity": "Customer", "id": "1", "sync_token": "0", "fields": {}}),
    ):
        refused = call(ctx, tool, arguments)
        assert refused["isError"]
        assert "read-only" in refused["content"][0]["text"]
    assert ctx["emulator"].counters["api.write"] == writes_before
    assert not customers_named(ctx, "Sneaky Co")
    # Not a string that merely looks true.
    Connector.objects.filter(pk=ctx["connector"].pk).update(settings={"writes_allowed": "yes"})
    assert not WRITE_TOOLS & set(list_tools(ctx))


def test_write_tools_are_listed_with_write_annotations_when_writes_are_allowed(writable):
    tools = list_tools(writable)
    assert WRITE_TOOLS < set(tools)
    for name in WRITE_TOOLS:
        hints = tools[name]["annotations"]
        assert hints["readOnlyHint"] is False and hints["openWorldHint"] is True, name
        assert hints["destructiveHint"] is (name == "update_record"), name
        assert hints["idempotentHint"] is (name == "update_record"), name
    lines = tools["create_invoice"]["inputSchema"]["$defs"]["InvoiceLine"]["properties"]
    assert {"item_id", "quantity", "unit_price", "amount", "description"} == set(lines)
    assert tools["update_record"]["inputSchema"]["required"] == [
        "entity",
        "id",
        "sync_token",
        "fields",
    ]


def test_create_customer_then_find_customers_finds_it(writable):
    ctx = writable
    created = ok(
        call(
            ctx,
            "create_customer",
            {
                "display_name": "Señor O'Malley's Tacos",
                "email": "hola@omalley.example",
                "billing_address": {"city": "Bend", "state": "OR"},
            },
        )
    )
    customer = created["customer"]
    assert customer["balance"] == 0 and customer["active"]
    stored = books(ctx).get("Customer", customer["id"])
    assert stored["DisplayName"] == "Señor O'Malley's Tacos"
    assert stored["BillAddr"] == {"City": "Bend", "CountrySubDivisionCode": "OR"}

    found = ok(call(ctx, "find_customers", {"name": "o'malley"}))
    assert [m["id"] for m in found["matches"]] == [customer["id"]]
    assert found["matches"][0]["email"] == "hola@omalley.example"

    duplicate = call(ctx, "create_customer", {"display_name": "Señor O'Malley's Tacos"})
    assert duplicate["isError"] and "Duplicate Name" in duplicate["content"][0]["text"]


def test_create_invoice_then_record_payment_lowers_its_balance(writable):
    ctx = writable
    company = books(ctx)
    customer = company.all("Customer")[3]  # Maya Patel
    items = {item["Name"]: item for item in company.all("Item")}
    created = ok(
        call(
            ctx,
            "create_invoice",
            {
                "customer_id": customer["Id"],
                "lines": [
                    {"item_id": items["Consulting"]["Id"], "quantity": 2},  # the item's 150.00
                    {"item_id": items["Design"]["Id"], "amount": 99.5, "description": "Logo"},
                ],
                "due_date": "2099-01-31",
            },
        )
    )
    invoice = created["invoice"]
    assert invoice["total"] == invoice["balance"] == 399.5
    assert invoice["status"] == "open" and invoice["due_date"] == "2099-01-31"
    assert invoice["customer"]["name"] == "Maya Patel"
    stored = company.get("Invoice", invoice["id"])
    assert stored["Line"][0]["SalesItemLineDetail"]["Qty"] == 2
    assert stored["Line"][1]["Description"] == "Logo"

    paid = ok(
        call(
            ctx,
            "record_payment",
            {"customer_id": customer["Id"], "amount_received": 150, "invoice_ids": [invoice["id"]]},
        )
    )
    assert paid["applied"] == [
        {
            "invoice_id": invoice["id"],
            "doc_number": invoice["doc_number"],
            "amount_applied": 150.0,
            "invoice_balance": 249.5,
        }
    ]
    assert paid["unapplied_amount"] == 0 and paid["total"] == 150.0
    record = ok(call(ctx, "get_record", {"entity": "Invoice", "id": invoice["id"]}))
    assert record["record"]["Balance"] == 249.5

    # Paying more than is left: the invoice is settled, the rest stays as credit.
    rest = ok(
        call(
            ctx,
            "record_payment",
            {"customer_id": customer["Id"], "amount_received": 300, "invoice_ids": [invoice["id"]]},
        )
    )
    assert rest["applied"][0]["invoice_balance"] == 0
    assert rest["unapplied_amount"] == 50.5
    listed = ok(call(ctx, "list_invoices", {"customer_id": customer["Id"], "status": "paid"}))
    assert invoice["id"] in {i["id"] for i in listed["invoices"]}

    # Another customer's invoice is refused before anything is written.
    payments = len(company.all("Payment"))
    other = company.all("Customer")[0]
    wrong = call(
        ctx,
        "record_payment",
        {"customer_id": other["Id"], "amount_received": 10, "invoice_ids": [invoice["id"]]},
    )
    assert wrong["isError"] and "belongs to customer" in wrong["content"][0]["text"]
    assert len(company.all("Payment")) == payments


def test_create_bill_shows_in_list_bills_and_aged_payables(writable):
    ctx = writable
    company = books(ctx)
    vendor = company.all("Vendor")[3]  # Paperclip Office Supply
    office = next(a for a in company.all("Account") if a["Name"] == "Office Expenses")
    owed_before = ok(call(ctx, "aged_payables"))["totals"]["GrandTotal"][-1]
    created = ok(
        call(
            ctx,
            "create_bill",
            {
                "vendor_id": vendor["Id"],
                "lines": [
                    {"account_id": office["Id"], "amount": 40.1, "description": "Toner"},
                    {"account_id": office["Id"], "amount": 9.9},
                ],
                "doc_number": "PC-778",
            },
        )
    )
    bill = created["bill"]
    assert bill["total"] == bill["balance"] == 50.0 and bill["doc_number"] == "PC-778"
    listed = ok(call(ctx, "list_bills", {"vendor_id": vendor["Id"], "status": "open"}))["bills"]
    assert bill["id"] in {b["id"] for b in listed}
    owed_after = ok(call(ctx, "aged_payables"))["totals"]["GrandTotal"][-1]
    assert owed_after == pytest.approx(owed_before + 50.0)


def test_update_record_needs_the_current_sync_token(writable):
    ctx = writable
    customer = books(ctx).all("Customer")[1]
    read = ok(call(ctx, "get_record", {"entity": "Customer", "id": customer["Id"]}))
    stale = read["sync_token"]
    updated = ok(
        call(
            ctx,
            "update_record",
            {
                "entity": "Customer",
                "id": customer["Id"],
                "sync_token": stale,
                "fields": {"PrimaryEmailAddr": {"Address": "new@juniper.example"}},
            },
        )
    )
    assert updated["sync_token"] == str(int(stale) + 1)
    assert updated["record"]["PrimaryEmailAddr"]["Address"] == "new@juniper.example"
    assert updated["record"]["DisplayName"] == customer["DisplayName"]  # sparse: kept

    conflict = call(
        ctx,
        "update_record",
        {
            "entity": "Customer",
            "id": customer["Id"],
            "sync_token": stale,
            "fields": {"Notes": "lost update"},
        },
    )
    assert conflict["isError"]
    text = conflict["content"][0]["text"]
    assert "SyncToken" in text and "get_record" in text and "Stale" in text
    assert "Notes" not in books(ctx).get("Customer", customer["Id"])

    retried = ok(
        call(
            ctx,
            "update_record",
            {
                "entity": "Customer",
                "id": customer["Id"],
                "sync_token": updated["sync_token"],
                "fields": {"Notes": "kept"},
            },
        )
    )
    assert retried["record"]["Notes"] == "kept"
    reserved = call(
        ctx,
        "update_record",
        {"entity": "Customer", "id": customer["Id"], "sync_token": "9", "fields": {"Id": "1"}},
    )
    assert reserved["isError"] and "cannot be set" in reserved["content"][0]["text"]


def test_a_create_resent_after_a_lost_answer_creates_one_record(writable):
    ctx = writable
    emulator = ctx["emulator"]
    # Intuit does the work, then the connection drops before the answer arrives; the client
    # sends the same request (same requestid) again and gets the first answer back.
    emulator.inject_fault("write", kind="drop_after", count=1)
    created = ok(call(ctx, "create_customer", {"display_name": "Dropped Line LLC"}))
    assert emulator.counters["faults.injected.drop_after"] == 1
    assert emulator.counters["api.requestid_replayed"] == 1
    assert [c["Id"] for c in customers_named(ctx, "Dropped Line LLC")] == [
        created["customer"]["id"]
    ]

    # A model retrying a whole tool call with the request_id it chose: the same record again.
    arguments = {"display_name": "Retry Twice Inc", "request_id": "retry-1"}
    first = ok(call(ctx, "create_customer", arguments))
    second = ok(call(ctx, "create_customer", arguments))
    assert first == second and first["request_id"] == "retry-1"
    assert len(customers_named(ctx, "Retry Twice Inc")) == 1
    # The key is scoped to the tool: another tool with the same key is a new write.
    vendor = books(ctx).all("Vendor")[0]
    expense = next(a for a in books(ctx).all("Account") if a["Name"] == "Utilities")
    bill = ok(
        call(
            ctx,
            "create_bill",
            {
                "vendor_id": vendor["Id"],
                "lines": [{"account_id": expense["Id"], "amount": 12}],
                "request_id": "retry-1",
            },
        )
    )
    assert bill["bill"]["total"] == 12.0


def test_the_audit_log_keeps_writes_in_full_with_intuits_request_id(writable):
    import hashlib
    import time

    from events.audit import audit_buffer
    from events.models import AuditRecord
    from tenants.services import connector_update

    ctx = writable
    audit_buffer.drain()
    ok(call(ctx, "create_customer", {"display_name": "Audit Co", "request_id": "k-1"}))
    connector_update(connector=ctx["connector"], tool_policy={"admins_only": ["create_bill"]})
    refused = call(ctx, "create_bill", {"vendor_id": "1", "lines": []})
    assert refused["isError"] and "admins" in refused["content"][0]["text"]
    deadline = time.monotonic() + 10
    while audit_buffer.pending() < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    audit_buffer.flush()
    created, denied = AuditRecord.objects.order_by("id")
    assert created.tool == "create_customer" and created.outcome == "ok"
    assert created.arguments_kept == "full"
    assert created.arguments == {"display_name": "Audit Co", "request_id": "k-1"}
    scoped = f"{ctx['connector'].pk}:{created.user_id}:create_customer:k-1"
    assert created.upstream_request_id == hashlib.sha256(scoped.encode()).hexdigest()[:40]
    assert (denied.tool, denied.outcome, denied.upstream_request_id) == (
        "create_bill",
        "denied",
        "",
    )


def test_a_write_refused_by_the_write_gate_is_audited_as_denied(scoped):
    import time

    from events.audit import audit_buffer
    from events.models import AuditRecord

    audit_buffer.drain()
    assert call(scoped, "create_customer", {"display_name": "Nope"})["isError"]
    deadline = time.monotonic() + 10
    while audit_buffer.pending() < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    audit_buffer.flush()
    record = AuditRecord.objects.get()
    assert (record.tool, record.outcome) == ("create_customer", "denied")
    assert "read-only" in record.error
