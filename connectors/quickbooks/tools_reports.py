"""Report tools: Intuit's nested report answer flattened into rows a model can read.

Intuit nests Sections (a Header, Rows, a Summary) inside Sections. Here every row carries the
titles of the sections above it (``section``), data rows keep the Id of the account, customer
or vendor they are about, section summaries become ``total`` rows, and each summary is also
listed under its Intuit group name in ``totals`` (NetIncome, TotalAssets, GrandTotal, ...).
Money cells are numbers; blank cells are null.
"""

from __future__ import annotations

import re
from datetime import date as Date
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from connectors.quickbooks.tools import READ_ONLY, with_company

Cell = float | str | None
Method = Annotated[
    Literal["Accrual", "Cash"],
    Field(description="Accrual (when invoiced/billed) or Cash (when paid)."),
]
StartDate = Annotated[
    Date | None,
    Field(description="First day, YYYY-MM-DD. Default: January 1 of end_date's year."),
]
EndDate = Annotated[Date | None, Field(description="Last day, YYYY-MM-DD. Default: today.")]
AsOfDate = Annotated[Date | None, Field(description="As of this day, YYYY-MM-DD. Default: today.")]
IncludeRaw = Annotated[
    bool, Field(description="Also return Intuit's original nested report (large).")
]

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


class ReportRow(BaseModel):
    kind: Literal["data", "total"]
    section: list[str] = Field(
        description="Titles of the sections this row is in, outermost first."
    )
    label: str
    id: str | None = Field(None, description="Id of the account, customer or vendor of the row.")
    values: list[Cell] = Field(description="One value per entry of `columns`.")
    group: str | None = Field(None, description="Intuit's name of the section a total closes.")


class Report(BaseModel):
    report: str
    basis: str | None = Field(None, description="Accrual or Cash.")
    start_date: str | None = None
    end_date: str | None = None
    as_of_date: str | None = None
    currency: str | None = None
    no_data: bool = False
    label_column: str = Field(description="What the row labels are (Account, Customer, ...).")
    columns: list[str] = Field(description="Titles of the value columns.")
    rows: list[ReportRow]
    totals: dict[str, list[Cell]] = Field(
        description="Each section total by Intuit group name, e.g. NetIncome, TotalAssets, "
        "TotalLiabilitiesAndEquity, GrandTotal."
    )
    raw: dict[str, Any] | None = None


def _cell(value: Any) -> Cell:
    text = "" if value is None else str(value)
    if text == "":
        return None
    return float(text) if _NUMBER.match(text) else text


def _split(col_data: list[dict[str, Any]]) -> tuple[str, str | None, list[Cell]]:
    if not col_data:
        return "", None, []
    first = col_data[0]
    return (
        str(first.get("value", "")),
        first.get("id"),
        [_cell(c.get("value")) for c in col_data[1:]],
    )


def flatten_report(payload: dict[str, Any], *, include_raw: bool = False) -> Report:
    """Intuit's Header / Columns / Rows report as a Report."""
    header = payload.get("Header") or {}
    options = {o.get("Name"): o.get("Value") for o in header.get("Option") or []}
    columns = (payload.get("Columns") or {}).get("Column") or []
    rows: list[ReportRow] = []
    totals: dict[str, list[Cell]] = {}

    def walk(items: list[dict[str, Any]], path: list[str]) -> None:
        for item in items:
            is_section = item.get("type") == "Section" or any(
                key in item for key in ("Header", "Rows", "Summary")
            )
            if not is_section:
                label, row_id, values = _split(item.get("ColData") or [])
                rows.append(
                    ReportRow(kind="data", section=path, label=label, id=row_id, values=values)
                )
                continue
            title, _, _ = _split((item.get("Header") or {}).get("ColData") or [])
            inner = [*path, title] if title else path
            walk((item.get("Rows") or {}).get("Row") or [], inner)
            if item.get("Summary"):
                label, _, values = _split(item["Summary"].get("ColData") or [])
                group = item.get("group")
                rows.append(
                    ReportRow(kind="total", section=inner, label=label, values=values, group=group)
                )
                if group:
                    totals[group] = values

    walk((payload.get("Rows") or {}).get("Row") or [], [])
    first_column = columns[0] if columns else {}
    return Report(
        report=header.get("ReportName", ""),
        basis=header.get("ReportBasis"),
        start_date=header.get("StartPeriod"),
        end_date=header.get("EndPeriod"),
        as_of_date=options.get("report_date"),
        currency=header.get("Currency"),
        no_data=options.get("NoReportData") == "true",
        label_column=first_column.get("ColTitle") or first_column.get("ColType") or "",
        columns=[c.get("ColTitle") or c.get("ColType") or "" for c in columns[1:]],
        rows=rows,
        totals=totals,
        raw=payload if include_raw else None,
    )


async def _report(ctx: Context, name: str, include_raw: bool, **params: Any) -> Report:
    start, end = params.get("start_date"), params.get("end_date")
    if start and end and start > end:
        raise ToolError("start_date is after end_date")
    query = {key: value.isoformat() for key, value in params.items() if isinstance(value, Date)}
    query.update({k: v for k, v in params.items() if isinstance(v, str)})
    payload = await with_company(ctx, lambda api: api.report(name, **query))
    return flatten_report(payload, include_raw=include_raw)


def register(server: MCPServer) -> None:
    @server.tool(title="Profit and loss", annotations=READ_ONLY)
    async def profit_and_loss(
        ctx: Context,
        start_date: StartDate = None,
        end_date: EndDate = None,
        accounting_method: Method = "Accrual",
        include_raw: IncludeRaw = False,
    ) -> Report:
        """Profit and loss (income statement) for a period: income, cost of goods sold,
        expenses, each by account, and net income (totals["NetIncome"])."""
        return await _report(
            ctx,
            "ProfitAndLoss",
            include_raw,
            start_date=start_date,
            end_date=end_date,
            accounting_method=accounting_method,
        )

    @server.tool(title="Balance sheet", annotations=READ_ONLY)
    async def balance_sheet(
        ctx: Context,
        as_of_date: AsOfDate = None,
        accounting_method: Method = "Accrual",
        include_raw: IncludeRaw = False,
    ) -> Report:
        """Balance sheet as of a day: assets, liabilities and equity by account.
        totals["TotalAssets"] equals totals["TotalLiabilitiesAndEquity"]."""
        return await _report(
            ctx,
            "BalanceSheet",
            include_raw,
            end_date=as_of_date,
            accounting_method=accounting_method,
        )

    @server.tool(title="Cash flow", annotations=READ_ONLY)
    async def cash_flow(
        ctx: Context,
        start_date: StartDate = None,
        end_date: EndDate = None,
        accounting_method: Method = "Accrual",
        include_raw: IncludeRaw = False,
    ) -> Report:
        """Statement of cash flows for a period: operating, investing and financing activity,
        and cash at the start and end (totals["BeginningCash"], totals["EndingCash"])."""
        return await _report(
            ctx,
            "CashFlow",
            include_raw,
            start_date=start_date,
            end_date=end_date,
            accounting_method=accounting_method,
        )

    @server.tool(title="Trial balance", annotations=READ_ONLY)
    async def trial_balance(
        ctx: Context,
        start_date: StartDate = None,
        end_date: EndDate = None,
        accounting_method: Method = "Accrual",
        include_raw: IncludeRaw = False,
    ) -> Report:
        """Trial balance: each account's debit or credit balance at end_date (income and
        expense accounts for the period); totals["GrandTotal"] is [debits, credits]."""
        return await _report(
            ctx,
            "TrialBalance",
            include_raw,
            start_date=start_date,
            end_date=end_date,
            accounting_method=accounting_method,
        )

    @server.tool(title="Aged receivables", annotations=READ_ONLY)
    async def aged_receivables(
        ctx: Context, as_of_date: AsOfDate = None, include_raw: IncludeRaw = False
    ) -> Report:
        """What each customer owes as of a day, by days past due (Current, 1 - 30, 31 - 60,
        61 - 90, 91 and over, Total); totals["GrandTotal"] sums every customer."""
        return await _report(ctx, "AgedReceivables", include_raw, report_date=as_of_date)

    @server.tool(title="Aged payables", annotations=READ_ONLY)
    async def aged_payables(
        ctx: Context, as_of_date: AsOfDate = None, include_raw: IncludeRaw = False
    ) -> Report:
        """What is owed to each vendor as of a day, by days past due (Current, 1 - 30,
        31 - 60, 61 - 90, 91 and over, Total); totals["GrandTotal"] sums every vendor."""
        return await _report(ctx, "AgedPayables", include_raw, report_date=as_of_date)
