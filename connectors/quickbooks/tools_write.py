"""Write tools, listed and callable only where the connector allows writes
(see connectors.write_gate).

Every write sends Intuit a requestid, so a write resent after a timeout or a dropped connection
returns the first answer instead of creating a second record. The client resends on its own
with the same id; a tool's ``request_id`` argument carries the same guarantee across tool
calls, for a model retrying a call whose answer it never saw.
"""

from __future__ import annotations

import hashlib
from datetime import date as Date
from decimal import Decimal
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from connectors.base import ToolContext, requires_scope, tool_context
from connectors.quickbooks import client as qbo
from connectors.quickbooks.kind import WRITE_SCOPE
from connectors.quickbooks.records import (
    BillSummary,
    InvoiceSummary,
    PartySummary,
    RecordEntity,
    RecordResult,
    Ref,
    amount,
    bill_summary,
    invoice_summary,
    party_summary,
    record_result,
)
from connectors.quickbooks.tools import CREATES, UPDATES, with_company

# Every write tool needs the write scope (a token without it gets the step-up challenge).
WRITES = requires_scope(WRITE_SCOPE)

CENT = Decimal("0.01")
DueDate = Annotated[Date | None, Field(description="YYYY-MM-DD. Default: 30 days after txn_date.")]
RequestId = Annotated[
    str | None,
    Field(
        max_length=100,
        description="Optional idempotency key of your choosing. Send the same value again when "
        "retrying a call whose answer you did not get: QuickBooks then returns the record the "
        "first call made instead of creating a second one.",
    ),
]
Money = Annotated[float, Field(gt=0, description="Amount in the company's currency, e.g. 125.50.")]
OptionalDate = Annotated[Date | None, Field(description="YYYY-MM-DD.")]
# Fields update_record sets from its own arguments, or that Intuit computes.
RESERVED_FIELDS = {"Id", "SyncToken", "sparse", "domain", "MetaData"}


class Address(BaseModel):
    line1: str | None = None
    city: str | None = None
    state: str | None = Field(None, description="State or province code, e.g. OR.")
    postal_code: str | None = None
    country: str | None = None


class InvoiceLine(BaseModel):
    item_id: str = Field(description="Id of the product or service (query: SELECT * FROM Item).")
    quantity: float | None = Field(None, gt=0, description="Default 1.")
    unit_price: float | None = Field(
        None, ge=0, description="Default: the item's price when amount is not given either."
    )
    amount: float | None = Field(
        None, ge=0, description="Line total. Default: quantity × unit_price."
    )
    description: str | None = None


class BillLine(BaseModel):
    account_id: str = Field(description="Id of the expense account (see chart_of_accounts).")
    amount: float = Field(gt=0)
    description: str | None = None


class CustomerWrite(BaseModel):
    customer: PartySummary
    request_id: str = Field(description="Send again to retry this exact create safely.")


class InvoiceWrite(BaseModel):
    invoice: InvoiceSummary
    request_id: str


class BillWrite(BaseModel):
    bill: BillSummary
    request_id: str


class AppliedPayment(BaseModel):
    invoice_id: str
    doc_number: str | None = None
    amount_applied: float
    invoice_balance: float = Field(description="The invoice's open balance after this payment.")


class PaymentWrite(BaseModel):
    payment_id: str
    customer: Ref | None
    total: float
    txn_date: str
    applied: list[AppliedPayment]
    unapplied_amount: float = Field(description="Left as a credit for the customer.")
    skipped_invoice_ids: list[str] = Field(
        description="Listed invoices the payment was not applied to: nothing was left to pay "
        "on them, or the amount was used up before them."
    )
    request_id: str


def _money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def _request_id(context: ToolContext, tool: str, key: str | None) -> tuple[str, str]:
    """(the key to hand back to the caller, the requestid sent to Intuit).

    Intuit keeps requestids per company, so the one sent is scoped to this connector, user
    and tool: two callers, or two tools, cannot replay each other's answers. A hash keeps it
    within Intuit's 50 characters.
    """
    key = key or qbo.new_request_id()
    scoped = f"{context.connector_id}:{context.user_id}:{tool}:{key}"
    sent = hashlib.sha256(scoped.encode()).hexdigest()[:40]
    context.note(upstream_request_id=sent)
    return key, sent


def _address(address: Address | None) -> dict[str, str] | None:
    if address is None:
        return None
    fields = {
        "Line1": address.line1,
        "City": address.city,
        "CountrySubDivisionCode": address.state,
        "PostalCode": address.postal_code,
        "Country": address.country,
    }
    return {key: value for key, value in fields.items() if value}


async def _invoice_lines(api: qbo.QuickBooksApi, lines: list[InvoiceLine]) -> list[dict[str, Any]]:
    prices: dict[str, Any] = {}
    body = []
    for line in lines:
        detail: dict[str, Any] = {"ItemRef": {"value": line.item_id}}
        quantity = line.quantity if line.quantity is not None else 1
        unit_price = line.unit_price
        if line.amount is None and unit_price is None:
            if line.item_id not in prices:
                prices[line.item_id] = (await api.get("Item", line.item_id)).get("UnitPrice")
            unit_price = prices[line.item_id]
            if unit_price is None:
                raise ToolError(f"Item {line.item_id} has no price: give the line an amount")
        if line.amount is not None:
            line_amount = _money(line.amount)
        else:
            line_amount = _money(Decimal(str(quantity)) * Decimal(str(unit_price)))
        detail["Qty"] = quantity
        if unit_price is not None:
            detail["UnitPrice"] = unit_price
        entry: dict[str, Any] = {
            "DetailType": "SalesItemLineDetail",
            "Amount": float(line_amount),
            "SalesItemLineDetail": detail,
        }
        if line.description:
            entry["Description"] = line.description
        body.append(entry)
    return body


def register(server: MCPServer) -> None:
    @server.tool(title="Create a customer", annotations=CREATES, meta=WRITES)
    async def create_customer(
        ctx: Context,
        display_name: Annotated[
            str, Field(min_length=1, max_length=500, description="Unique among customers.")
        ],
        company_name: str | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        billing_address: Address | None = None,
        notes: str | None = None,
        request_id: RequestId = None,
    ) -> CustomerWrite:
        """Create a customer. Check with find_customers first: display names are unique, and
        QuickBooks refuses a duplicate."""
        key, sent = _request_id(tool_context(ctx), "create_customer", request_id)
        body: dict[str, Any] = {"DisplayName": display_name}
        for field, value in (
            ("CompanyName", company_name),
            ("GivenName", given_name),
            ("FamilyName", family_name),
            ("Notes", notes),
        ):
            if value:
                body[field] = value
        if email:
            body["PrimaryEmailAddr"] = {"Address": email}
        if phone:
            body["PrimaryPhone"] = {"FreeFormNumber": phone}
        if address := _address(billing_address):
            body["BillAddr"] = address
        record = await with_company(ctx, lambda api: api.create("Customer", body, request_id=sent))
        return CustomerWrite(customer=party_summary(record), request_id=key)

    @server.tool(title="Create an invoice", annotations=CREATES, meta=WRITES)
    async def create_invoice(
        ctx: Context,
        customer_id: Annotated[str, Field(description="The customer's Id (find_customers).")],
        lines: Annotated[list[InvoiceLine], Field(min_length=1)],
        txn_date: Annotated[
            Date | None, Field(description="Invoice date, YYYY-MM-DD. Default: today.")
        ] = None,
        due_date: DueDate = None,
        doc_number: Annotated[
            str | None, Field(max_length=21, description="Invoice number. Default: the next one.")
        ] = None,
        customer_memo: Annotated[str | None, Field(description="Printed on the invoice.")] = None,
        request_id: RequestId = None,
    ) -> InvoiceWrite:
        """Create an invoice for a customer. Each line names an item (product or service) and
        its quantity; its amount is quantity × unit_price, where unit_price defaults to the
        item's price, unless an amount is given."""
        key, sent = _request_id(tool_context(ctx), "create_invoice", request_id)
        if txn_date and due_date and due_date < txn_date:
            raise ToolError("due_date is before txn_date")

        async def create(api: qbo.QuickBooksApi) -> dict[str, Any]:
            body: dict[str, Any] = {
                "CustomerRef": {"value": customer_id},
                "Line": await _invoice_lines(api, lines),
            }
            if txn_date:
                body["TxnDate"] = txn_date.isoformat()
            if due_date:
                body["DueDate"] = due_date.isoformat()
            if doc_number:
                body["DocNumber"] = doc_number
            if customer_memo:
                body["CustomerMemo"] = {"value": customer_memo}
            return await api.create("Invoice", body, request_id=sent)

        record = await with_company(ctx, create)
        return InvoiceWrite(invoice=invoice_summary(record), request_id=key)

    @server.tool(title="Record a payment", annotations=CREATES, meta=WRITES)
    async def record_payment(
        ctx: Context,
        customer_id: Annotated[str, Field(description="The paying customer's Id.")],
        amount_received: Annotated[Money, Field(description="The amount received.")],
        invoice_ids: Annotated[
            list[str] | None,
            Field(
                description="Invoices (of this customer) to apply the payment to, in order: "
                "each gets up to its open balance, until the amount is used up. Anything left, "
                "or everything when no invoices are given, stays as the customer's credit."
            ),
        ] = None,
        txn_date: Annotated[Date | None, Field(description="YYYY-MM-DD. Default: today.")] = None,
        reference: Annotated[
            str | None, Field(max_length=21, description="Check or reference number.")
        ] = None,
        deposit_account_id: Annotated[
            str | None, Field(description="Bank account Id. Default: the company's default.")
        ] = None,
        request_id: RequestId = None,
    ) -> PaymentWrite:
        """Record money received from a customer and apply it to their open invoices, which
        lowers those invoices' balances."""
        key, sent = _request_id(tool_context(ctx), "record_payment", request_id)
        total = _money(amount_received)
        wanted = list(dict.fromkeys(invoice_ids or []))

        async def pay(api: qbo.QuickBooksApi) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            invoices = [await api.get("Invoice", invoice_id) for invoice_id in wanted]
            remaining, lines = total, []
            for invoice in invoices:
                owner = (invoice.get("CustomerRef") or {}).get("value")
                if str(owner) != customer_id:
                    raise ToolError(
                        f"Invoice {invoice['Id']} belongs to customer {owner}, not {customer_id}"
                    )
                applied = min(_money(invoice.get("Balance", 0)), remaining)
                if applied > 0:
                    lines.append(
                        {
                            "Amount": float(applied),
                            "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}],
                        }
                    )
                    remaining -= applied
            body: dict[str, Any] = {
                "CustomerRef": {"value": customer_id},
                "TotalAmt": float(total),
                "Line": lines,
            }
            if txn_date:
                body["TxnDate"] = txn_date.isoformat()
            if reference:
                body["PaymentRefNum"] = reference
            if deposit_account_id:
                body["DepositToAccountRef"] = {"value": deposit_account_id}
            payment = await api.create("Payment", body, request_id=sent)
            # Balances after the payment, from the payment as Intuit stored it (a replayed
            # request answers with the first payment, whatever this call planned).
            linked = [line["LinkedTxn"][0]["TxnId"] for line in payment.get("Line", [])]
            return payment, [await api.get("Invoice", invoice_id) for invoice_id in linked]

        payment, after = await with_company(ctx, pay)
        by_id = {invoice["Id"]: invoice for invoice in after}
        applied = []
        for line in payment.get("Line", []):
            invoice = by_id[line["LinkedTxn"][0]["TxnId"]]
            applied.append(
                AppliedPayment(
                    invoice_id=invoice["Id"],
                    doc_number=invoice.get("DocNumber"),
                    amount_applied=amount(line.get("Amount")),
                    invoice_balance=amount(invoice.get("Balance")),
                )
            )
        customer_ref = payment.get("CustomerRef") or {}
        return PaymentWrite(
            payment_id=payment["Id"],
            customer=Ref(
                id=str(customer_ref.get("value", customer_id)), name=customer_ref.get("name")
            ),
            total=amount(payment.get("TotalAmt")),
            txn_date=payment.get("TxnDate", ""),
            applied=applied,
            unapplied_amount=amount(payment.get("UnappliedAmt")),
            skipped_invoice_ids=[i for i in wanted if i not in by_id],
            request_id=key,
        )

    @server.tool(title="Create a bill", annotations=CREATES, meta=WRITES)
    async def create_bill(
        ctx: Context,
        vendor_id: Annotated[str, Field(description="The vendor's Id (find_vendors).")],
        lines: Annotated[list[BillLine], Field(min_length=1)],
        txn_date: Annotated[
            Date | None, Field(description="Bill date, YYYY-MM-DD. Default: today.")
        ] = None,
        due_date: DueDate = None,
        doc_number: Annotated[
            str | None, Field(max_length=21, description="The vendor's bill number.")
        ] = None,
        memo: Annotated[str | None, Field(description="Private note on the bill.")] = None,
        request_id: RequestId = None,
    ) -> BillWrite:
        """Record a bill from a vendor (money the company owes), each line an amount on an
        expense account."""
        key, sent = _request_id(tool_context(ctx), "create_bill", request_id)
        if txn_date and due_date and due_date < txn_date:
            raise ToolError("due_date is before txn_date")
        body: dict[str, Any] = {
            "VendorRef": {"value": vendor_id},
            "Line": [
                {
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "Amount": float(_money(line.amount)),
                    "AccountBasedExpenseLineDetail": {"AccountRef": {"value": line.account_id}},
                    **({"Description": line.description} if line.description else {}),
                }
                for line in lines
            ],
        }
        if txn_date:
            body["TxnDate"] = txn_date.isoformat()
        if due_date:
            body["DueDate"] = due_date.isoformat()
        if doc_number:
            body["DocNumber"] = doc_number
        if memo:
            body["PrivateNote"] = memo
        record = await with_company(ctx, lambda api: api.create("Bill", body, request_id=sent))
        return BillWrite(bill=bill_summary(record), request_id=key)

    @server.tool(title="Update a record", annotations=UPDATES, meta=WRITES)
    async def update_record(
        ctx: Context,
        entity: Annotated[RecordEntity, Field(description="The record type.")],
        id: Annotated[str, Field(description="The record's Id.")],
        sync_token: Annotated[
            str, Field(description="The SyncToken get_record returned for this record.")
        ],
        fields: Annotated[
            dict[str, Any],
            Field(
                description="Only the fields to change, in Intuit's names as get_record shows "
                'them, e.g. {"PrimaryEmailAddr": {"Address": "a@b.example"}} or '
                '{"DueDate": "2025-02-28"}. Fields not sent keep their values.'
            ),
        ],
    ) -> RecordResult:
        """Change some fields of a record (a sparse update). Needs the record's current
        SyncToken: read the record with get_record first. If it changed since, the update is
        refused; read it again and retry with the new SyncToken."""
        if not fields:
            raise ToolError("fields is empty: give at least one field to change")
        reserved = sorted(RESERVED_FIELDS & set(fields))
        if reserved:
            raise ToolError(f"{', '.join(reserved)} cannot be set through fields")
        _, sent = _request_id(tool_context(ctx), "update_record", None)
        body = {**fields, "Id": id, "SyncToken": sync_token}
        record = await with_company(
            ctx, lambda api: api.sparse_update(entity, body, request_id=sent)
        )
        return record_result(entity, record)
