"""Compact shapes of QuickBooks records, as the read and write tools return them.

Summaries use snake_case names and JSON numbers for amounts; a whole record (RecordResult)
keeps Intuit's own field names, the names update_record and query take.
"""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import date as Date
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

# Entities get_record and update_record accept (the ones Intuit reads by Id that these tools
# are about; query reaches the rest).
RecordEntity = Literal[
    "Customer",
    "Vendor",
    "Item",
    "Account",
    "Invoice",
    "Bill",
    "Payment",
    "Estimate",
    "SalesReceipt",
    "CreditMemo",
    "BillPayment",
    "Purchase",
    "JournalEntry",
    "Employee",
    "Term",
]


class Ref(BaseModel):
    """A reference to another record: its Id and display name."""

    id: str
    name: str | None = None


def ref(value: Any) -> Ref | None:
    """Intuit's ``{"value": id, "name": ...}`` reference as a Ref."""
    if not isinstance(value, dict) or not value.get("value"):
        return None
    return Ref(id=str(value["value"]), name=value.get("name"))


def amount(value: Any) -> float:
    """An Intuit amount (number or text) as a JSON number; missing is 0."""
    return float(Decimal(str(value))) if value not in (None, "") else 0.0


def today() -> Date:
    """The date "overdue" is measured against: today in UTC."""
    return datetime.now(UTC).date()


class RecordResult(BaseModel):
    entity: str
    id: str
    sync_token: str | None = Field(description="Pass to update_record to change this record.")
    record: dict[str, Any] = Field(description="The whole record, in Intuit's field names.")


class PartySummary(BaseModel):
    """A customer or vendor."""

    id: str
    display_name: str
    company_name: str | None = None
    email: str | None = None
    phone: str | None = None
    balance: float = Field(description="Open balance (owed by a customer, owed to a vendor).")
    active: bool
    sync_token: str


class InvoiceSummary(BaseModel):
    id: str
    doc_number: str | None = None
    customer: Ref | None
    txn_date: str
    due_date: str | None = None
    total: float
    balance: float = Field(description="Amount still open.")
    status: Literal["open", "overdue", "paid"]
    sync_token: str


class BillSummary(BaseModel):
    id: str
    doc_number: str | None = None
    vendor: Ref | None
    txn_date: str
    due_date: str | None = None
    total: float
    balance: float = Field(description="Amount still unpaid.")
    status: Literal["open", "overdue", "paid"]
    sync_token: str


class AccountSummary(BaseModel):
    id: str
    name: str
    account_type: str
    account_sub_type: str | None = None
    classification: str | None = None
    current_balance: float
    active: bool
    acct_num: str | None = None


def party_summary(record: dict[str, Any]) -> PartySummary:
    return PartySummary(
        id=record["Id"],
        display_name=record.get("DisplayName", ""),
        company_name=record.get("CompanyName"),
        email=(record.get("PrimaryEmailAddr") or {}).get("Address"),
        phone=(record.get("PrimaryPhone") or {}).get("FreeFormNumber"),
        balance=amount(record.get("Balance")),
        active=record.get("Active", True) is not False,
        sync_token=str(record.get("SyncToken", "")),
    )


def _status(balance: float, due_date: str | None) -> Literal["open", "overdue", "paid"]:
    if balance == 0:
        return "paid"
    if due_date and due_date < today().isoformat():
        return "overdue"
    return "open"


def invoice_summary(record: dict[str, Any]) -> InvoiceSummary:
    balance = amount(record.get("Balance"))
    return InvoiceSummary(
        id=record["Id"],
        doc_number=record.get("DocNumber"),
        customer=ref(record.get("CustomerRef")),
        txn_date=record.get("TxnDate", ""),
        due_date=record.get("DueDate"),
        total=amount(record.get("TotalAmt")),
        balance=balance,
        status=_status(balance, record.get("DueDate")),
        sync_token=str(record.get("SyncToken", "")),
    )


def bill_summary(record: dict[str, Any]) -> BillSummary:
    balance = amount(record.get("Balance"))
    return BillSummary(
        id=record["Id"],
        doc_number=record.get("DocNumber"),
        vendor=ref(record.get("VendorRef")),
        txn_date=record.get("TxnDate", ""),
        due_date=record.get("DueDate"),
        total=amount(record.get("TotalAmt")),
        balance=balance,
        status=_status(balance, record.get("DueDate")),
        sync_token=str(record.get("SyncToken", "")),
    )


def record_result(entity: str, record: dict[str, Any]) -> RecordResult:
    sync_token = record.get("SyncToken")
    return RecordResult(
        entity=entity,
        id=str(record.get("Id", "")),
        sync_token=str(sync_token) if sync_token is not None else None,
        record=record,
    )


def account_summary(record: dict[str, Any]) -> AccountSummary:
    return AccountSummary(
        id=record["Id"],
        name=record.get("Name", ""),
        account_type=record.get("AccountType", ""),
        account_sub_type=record.get("AccountSubType"),
        classification=record.get("Classification"),
        current_balance=amount(record.get("CurrentBalance")),
        active=record.get("Active", True) is not False,
        acct_num=record.get("AcctNum"),
    )
