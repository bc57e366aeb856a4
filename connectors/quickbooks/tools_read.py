"""Read tools: company info, records by id, queries, name searches, invoices, bills, accounts.

List tools return the compact summaries of records.py and page with start_position /
max_results; get_record returns the whole record in Intuit's own field names.
"""

from __future__ import annotations

from datetime import date as Date
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from connectors.quickbooks import client as qbo
from connectors.quickbooks.query import quote_literal
from connectors.quickbooks.records import (
    AccountSummary,
    BillSummary,
    InvoiceSummary,
    PartySummary,
    RecordEntity,
    RecordResult,
    account_summary,
    bill_summary,
    invoice_summary,
    party_summary,
    record_result,
    today,
)
from connectors.quickbooks.tools import READ_ONLY, next_start, with_company

AccountType = Literal[
    "Bank",
    "Accounts Receivable",
    "Other Current Asset",
    "Fixed Asset",
    "Other Asset",
    "Accounts Payable",
    "Credit Card",
    "Other Current Liability",
    "Long Term Liability",
    "Equity",
    "Income",
    "Other Income",
    "Cost of Goods Sold",
    "Expense",
    "Other Expense",
]
Status = Literal["open", "overdue", "paid", "all"]
StatusFilter = Annotated[
    Status,
    Field(
        description="open: not fully paid; overdue: open and past its due date; "
        "paid: nothing left to pay; all: any."
    ),
]

StartPosition = Annotated[int, Field(ge=1, description="1-based position of the first result.")]
MaxResults = Annotated[int, Field(ge=1, le=1000, description="Page size (1 to 1000).")]
DateFrom = Annotated[
    Date | None, Field(description="Earliest transaction date (TxnDate), YYYY-MM-DD, inclusive.")
]
DateTo = Annotated[
    Date | None, Field(description="Latest transaction date (TxnDate), YYYY-MM-DD, inclusive.")
]


# --- output shapes ----------------------------------------------------------------------------


class CompanyInfo(TypedDict, total=False):
    """CompanyInfo fields, in Intuit's names."""

    Id: str | None
    CompanyName: str | None
    LegalName: str | None
    Country: str | None
    FiscalYearStartMonth: str | None
    CompanyAddr: dict[str, Any] | None
    Email: dict[str, Any] | None


class QueryResult(BaseModel):
    entity: str
    start_position: int
    rows: list[dict[str, Any]] | None = Field(None, description="The page (absent for count).")
    returned: int | None = None
    next_start_position: int | None = Field(
        None, description="Pass as start_position for the next page; null on the last page."
    )
    total_count: int | None = Field(None, description="Only for SELECT count(*).")


class PartyPage(BaseModel):
    matches: list[PartySummary]
    start_position: int
    returned: int
    next_start_position: int | None


class InvoicePage(BaseModel):
    invoices: list[InvoiceSummary]
    start_position: int
    returned: int
    next_start_position: int | None


class BillPage(BaseModel):
    bills: list[BillSummary]
    start_position: int
    returned: int
    next_start_position: int | None


class ChartOfAccounts(BaseModel):
    accounts: list[AccountSummary]


# --- query building ---------------------------------------------------------------------------


def _where(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _name_conditions(field: str, name: str, include_inactive: bool) -> list[str]:
    conditions = []
    if name.strip():
        conditions.append(f"{field} LIKE {quote_literal(f'%{name.strip()}%')}")
    # Intuit leaves inactive names out unless asked; saying so explicitly keeps both cases clear.
    conditions.append("Active IN (true, false)" if include_inactive else "Active = true")
    return conditions


def _transaction_conditions(
    party_field: str,
    party_id: str | None,
    status: Status,
    date_from: Date | None,
    date_to: Date | None,
) -> list[str]:
    if date_from and date_to and date_from > date_to:
        raise ToolError("date_from is after date_to")
    conditions = []
    if party_id:
        conditions.append(f"{party_field} = {quote_literal(party_id)}")
    if status in ("open", "overdue"):
        conditions.append("Balance > '0'")
    if status == "overdue":
        conditions.append(f"DueDate < {quote_literal(today().isoformat())}")
    if status == "paid":
        conditions.append("Balance = '0'")
    if date_from:
        conditions.append(f"TxnDate >= {quote_literal(date_from.isoformat())}")
    if date_to:
        conditions.append(f"TxnDate <= {quote_literal(date_to.isoformat())}")
    return conditions


async def _page(
    ctx: Context, sql: str, start_position: int, max_results: int
) -> tuple[list[dict[str, Any]], int | None]:
    page = await with_company(
        ctx, lambda api: api.query(sql, start_position=start_position, max_results=max_results)
    )
    return page.items, next_start(start_position, len(page.items), max_results)


# --- tools ------------------------------------------------------------------------------------


def register(server: MCPServer) -> None:
    @server.tool(title="Company info", annotations=READ_ONLY)
    async def company_info(ctx: Context) -> CompanyInfo:
        """The connected company's name, legal name, address, country and fiscal year start
        month (Intuit's CompanyInfo fields)."""
        info = await with_company(ctx, lambda api: api.company_info())
        return CompanyInfo(**{key: info.get(key) for key in CompanyInfo.__annotations__})

    @server.tool(title="Query QuickBooks", annotations=READ_ONLY)
    async def query(
        ctx: Context,
        query: Annotated[
            str,
            Field(description="e.g. SELECT * FROM Invoice WHERE Balance > '0' ORDERBY DueDate"),
        ],
        start_position: StartPosition = 1,
        max_results: MaxResults = 100,
    ) -> QueryResult:
        """Run a read-only QuickBooks query, for anything the other tools do not cover.
        Grammar: SELECT * | count(*) FROM Entity [WHERE a AND b] [ORDERBY field [ASC|DESC]];
        operators = < > <= >= IN LIKE ('%' is the only wildcard); no OR, NOT, JOIN or column
        lists. Text and dates are quoted ('2025-01-31'); escape a quote inside text as \\'.
        Pages with start_position and max_results instead of STARTPOSITION/MAXRESULTS."""
        try:
            qbo.validate_query(query)
        except qbo.QuickBooksError as exc:
            raise ToolError(f"Invalid query: {exc}") from None
        page = await with_company(
            ctx,
            lambda api: api.query(query, start_position=start_position, max_results=max_results),
        )
        if page.total_count is not None:
            return QueryResult(entity=page.entity, start_position=1, total_count=page.total_count)
        return QueryResult(
            entity=page.entity,
            start_position=page.start_position,
            rows=page.items,
            returned=len(page.items),
            next_start_position=next_start(start_position, len(page.items), max_results),
        )

    @server.tool(title="Get a record", annotations=READ_ONLY)
    async def get_record(
        ctx: Context,
        entity: Annotated[RecordEntity, Field(description="The record type.")],
        id: Annotated[str, Field(description="The record's Id, e.g. from a list or find tool.")],
    ) -> RecordResult:
        """One whole record by type and Id, in Intuit's field names, with its current
        SyncToken. Read a record here before update_record, and again after a stale
        SyncToken error."""
        record = await with_company(ctx, lambda api: api.get(entity, id))
        return record_result(entity, record)

    @server.tool(title="Find customers", annotations=READ_ONLY)
    async def find_customers(
        ctx: Context,
        name: Annotated[
            str,
            Field(description="Part of the display name, case-insensitive; empty lists all."),
        ] = "",
        include_inactive: bool = False,
        start_position: StartPosition = 1,
        max_results: MaxResults = 20,
    ) -> PartyPage:
        """Customers whose display name contains `name`, by display name, with their Id,
        contact details and open balance. Use the Id with list_invoices, create_invoice or
        record_payment."""
        sql = "SELECT * FROM Customer" + _where(
            _name_conditions("DisplayName", name, include_inactive)
        )
        items, following = await _page(
            ctx, f"{sql} ORDERBY DisplayName", start_position, max_results
        )
        return PartyPage(
            matches=[party_summary(item) for item in items],
            start_position=start_position,
            returned=len(items),
            next_start_position=following,
        )

    @server.tool(title="Find vendors", annotations=READ_ONLY)
    async def find_vendors(
        ctx: Context,
        name: Annotated[
            str,
            Field(description="Part of the display name, case-insensitive; empty lists all."),
        ] = "",
        include_inactive: bool = False,
        start_position: StartPosition = 1,
        max_results: MaxResults = 20,
    ) -> PartyPage:
        """Vendors (suppliers) whose display name contains `name`, by display name, with
        their Id, contact details and the balance owed to them. Use the Id with list_bills or
        create_bill."""
        sql = "SELECT * FROM Vendor" + _where(
            _name_conditions("DisplayName", name, include_inactive)
        )
        items, following = await _page(
            ctx, f"{sql} ORDERBY DisplayName", start_position, max_results
        )
        return PartyPage(
            matches=[party_summary(item) for item in items],
            start_position=start_position,
            returned=len(items),
            next_start_position=following,
        )

    @server.tool(title="List invoices", annotations=READ_ONLY)
    async def list_invoices(
        ctx: Context,
        customer_id: Annotated[
            str | None, Field(description="Only this customer's invoices (Id).")
        ] = None,
        status: StatusFilter = "all",
        date_from: DateFrom = None,
        date_to: DateTo = None,
        start_position: StartPosition = 1,
        max_results: MaxResults = 50,
    ) -> InvoicePage:
        """Invoices, newest transaction date first, with customer, dates, total, open
        balance and status. Filter by customer, status and a TxnDate range."""
        conditions = _transaction_conditions("CustomerRef", customer_id, status, date_from, date_to)
        sql = f"SELECT * FROM Invoice{_where(conditions)} ORDERBY TxnDate DESC"
        items, following = await _page(ctx, sql, start_position, max_results)
        return InvoicePage(
            invoices=[invoice_summary(item) for item in items],
            start_position=start_position,
            returned=len(items),
            next_start_position=following,
        )

    @server.tool(title="List bills", annotations=READ_ONLY)
    async def list_bills(
        ctx: Context,
        vendor_id: Annotated[
            str | None, Field(description="Only this vendor's bills (Id).")
        ] = None,
        status: StatusFilter = "all",
        date_from: DateFrom = None,
        date_to: DateTo = None,
        start_position: StartPosition = 1,
        max_results: MaxResults = 50,
    ) -> BillPage:
        """Bills (money owed to vendors), newest transaction date first, with vendor, dates,
        total, unpaid balance and status. Filter by vendor, status and a TxnDate range."""
        conditions = _transaction_conditions("VendorRef", vendor_id, status, date_from, date_to)
        sql = f"SELECT * FROM Bill{_where(conditions)} ORDERBY TxnDate DESC"
        items, following = await _page(ctx, sql, start_position, max_results)
        return BillPage(
            bills=[bill_summary(item) for item in items],
            start_position=start_position,
            returned=len(items),
            next_start_position=following,
        )

    @server.tool(title="Chart of accounts", annotations=READ_ONLY)
    async def chart_of_accounts(
        ctx: Context,
        account_type: Annotated[
            AccountType | None, Field(description="Only accounts of this type.")
        ] = None,
        include_inactive: bool = False,
    ) -> ChartOfAccounts:
        """The company's accounts by name, with Id, type, classification and current
        balance. Expense account Ids are what create_bill lines need."""
        conditions = ["Active IN (true, false)" if include_inactive else "Active = true"]
        if account_type:
            conditions.append(f"AccountType = {quote_literal(account_type)}")
        sql = f"SELECT * FROM Account{_where(conditions)} ORDERBY Name"
        rows = await with_company(ctx, lambda api: api.query_all(sql))
        return ChartOfAccounts(accounts=[account_summary(row) for row in rows])
