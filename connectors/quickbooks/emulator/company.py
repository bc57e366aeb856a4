"""One emulated QuickBooks company: its objects and the rules Intuit applies when writing them.

Objects are stored in Intuit's JSON shape. Derived numbers (invoice balances, customer and vendor
balances, account balances) are recomputed after every write, so reads, queries and reports always
agree with each other. Callers hold the emulator's lock.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from . import faults
from .entities import (
    ACCOUNT_TYPES,
    ALWAYS_ACCEPTED,
    CENT,
    ENTITY_BY_PATH,
    ENTITY_SPECS,
    ITEM_TYPES,
    USD,
    EntitySpec,
    json_amount,
    money,
)
from .faults import IntuitFault, intuit_time

__all__ = ["ENTITY_BY_PATH", "ENTITY_SPECS", "Company", "OpeningBalance", "money"]

_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class OpeningBalance:
    """Money an account held before the emulated books begin (offset: Opening Balance Equity)."""

    on: date
    account_id: str
    amount: Decimal


@dataclass
class Company:
    """The books of one realm."""

    realm_id: str
    name: str
    created_at: datetime
    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in ENTITY_SPECS}
    )
    opening_balances: list[OpeningBalance] = field(default_factory=list)
    # Part of each bill settled outside the emulated entities (there is no BillPayment entity):
    # it counts as paid from the bank account on the bill's date.
    bill_paid: dict[str, Decimal] = field(default_factory=dict)
    # Well-known accounts, by role ("ar", "ap", "bank", "opening_equity", ...) -> account id.
    account_roles: dict[str, str] = field(default_factory=dict)
    _next_ids: dict[str, int] = field(default_factory=dict)
    _next_doc_number: int = 1001

    # --- reads ------------------------------------------------------------------------------

    def all(self, entity: str) -> list[dict[str, Any]]:
        """Every stored object of an entity (copies, in Id order)."""
        stored = self.objects[entity]
        return [copy.deepcopy(stored[key]) for key in sorted(stored, key=_id_sort_key)]

    def get(self, entity: str, entity_id: str) -> dict[str, Any]:
        obj = self.objects[entity].get(str(entity_id))
        if obj is None:
            raise faults.object_not_found(entity, str(entity_id))
        return copy.deepcopy(obj)

    def company_info(self) -> dict[str, Any]:
        return self.get("CompanyInfo", "1")

    # --- writes -----------------------------------------------------------------------------

    def create(self, entity: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Create an object from a request body; Intuit's required fields and checks apply."""
        spec = ENTITY_SPECS[entity]
        if spec.kind == "company":
            raise faults.unsupported_operation("Operation Create is not supported for CompanyInfo")
        fields = self._writable_fields(spec, body)
        obj = self._normalize(spec, fields, now, existing_id=None)
        obj["Id"] = self._allocate_id(spec)
        obj["SyncToken"] = "0"
        obj["domain"] = "QBO"
        obj["sparse"] = False
        stamp = intuit_time(now)
        obj["MetaData"] = {"CreateTime": stamp, "LastUpdatedTime": stamp}
        self.objects[entity][obj["Id"]] = obj
        self.recompute()
        return self.get(entity, obj["Id"])

    def update(self, entity: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Sparse update (`"sparse": true`) merges the fields sent; a full update replaces all."""
        spec = ENTITY_SPECS[entity]
        current = self._current_for_write(spec, body)
        fields = self._writable_fields(spec, body)
        if body.get("sparse") is True:
            merged = {k: copy.deepcopy(v) for k, v in current.items() if k in spec.writable}
            merged.update(fields)
        else:
            merged = fields
        obj = self._normalize(spec, merged, now, existing_id=current["Id"])
        self._store_revision(spec, current, obj, now)
        self.recompute()
        return self.get(entity, current["Id"])

    def delete(self, entity: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
        """`?operation=delete`: only transactions; name-list objects are made inactive instead."""
        spec = ENTITY_SPECS[entity]
        if spec.kind != "transaction":
            raise faults.unsupported_operation(
                f"Operation Delete is not supported for {entity}; set Active to false instead."
            )
        current = self._current_for_write(spec, body)
        if entity == "Invoice":
            self._unlink_payments_from(current["Id"], now)
        del self.objects[entity][current["Id"]]
        self.bill_paid.pop(current["Id"], None)
        self.recompute()
        return {"Id": current["Id"], "status": "Deleted", "domain": "QBO"}

    def void(self, entity: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
        """`?operation=void`: zero the amounts, keep the record (invoices and payments)."""
        spec = ENTITY_SPECS[entity]
        if entity not in ("Invoice", "Payment"):
            raise faults.unsupported_operation(f"Operation Void is not supported for {entity}")
        current = self._current_for_write(spec, body)
        voided = {k: copy.deepcopy(v) for k, v in current.items() if k in spec.writable}
        voided["PrivateNote"] = "Voided"
        if entity == "Invoice":
            if self._applied_to_invoices(exclude_payment=None).get(current["Id"]):
                raise faults.business_validation(
                    "This invoice has payments applied. Delete or void them first."
                )
            for line in voided.get("Line", []):
                line["Amount"] = 0
                detail = line.get("SalesItemLineDetail")
                if detail is not None:
                    detail.pop("UnitPrice", None)
                    detail["Qty"] = 0
        else:
            voided["TotalAmt"] = 0
            voided["Line"] = []
        obj = self._normalize(spec, voided, now, existing_id=current["Id"])
        self._store_revision(spec, current, obj, now)
        self.recompute()
        return self.get(entity, current["Id"])

    def install_company_info(self, body: dict[str, Any], now: datetime) -> None:
        """Set the CompanyInfo object (created with the company; the API can only update it)."""
        spec = ENTITY_SPECS["CompanyInfo"]
        obj = self._normalize(spec, self._writable_fields(spec, body), now, existing_id="1")
        stamp = intuit_time(now)
        obj.update(Id="1", SyncToken="0", domain="QBO", sparse=False)
        obj["MetaData"] = {"CreateTime": stamp, "LastUpdatedTime": stamp}
        self.objects["CompanyInfo"]["1"] = obj

    def add_opening_balance(self, account_id: str, amount: Decimal, on: date) -> None:
        self.opening_balances.append(OpeningBalance(on, account_id, amount))
        self.recompute()

    # --- write helpers ----------------------------------------------------------------------

    def _allocate_id(self, spec: EntitySpec) -> str:
        # Name lists count per entity; transactions share one sequence, as in a real company.
        sequence = "transactions" if spec.kind == "transaction" else spec.name
        next_id = self._next_ids.get(sequence, 1)
        self._next_ids[sequence] = next_id + 1
        return str(next_id)

    def _writable_fields(self, spec: EntitySpec, body: dict[str, Any]) -> dict[str, Any]:
        for key in body:
            if key not in spec.writable and key not in spec.computed and key not in ALWAYS_ACCEPTED:
                raise faults.unsupported_property(key)
        return {k: copy.deepcopy(v) for k, v in body.items() if k in spec.writable}

    def _current_for_write(self, spec: EntitySpec, body: dict[str, Any]) -> dict[str, Any]:
        entity_id = body.get("Id")
        if entity_id in (None, ""):
            raise faults.required_param_missing("Id")
        current = self.objects[spec.name].get(str(entity_id))
        if current is None:
            raise faults.object_not_found(spec.name, str(entity_id))
        sync_token = body.get("SyncToken")
        if sync_token in (None, ""):
            raise faults.required_param_missing("SyncToken")
        if str(sync_token) != current["SyncToken"]:
            raise faults.stale_object()
        return current

    def _store_revision(
        self, spec: EntitySpec, current: dict[str, Any], obj: dict[str, Any], now: datetime
    ) -> None:
        obj["Id"] = current["Id"]
        obj["SyncToken"] = str(int(current["SyncToken"]) + 1)
        obj["domain"] = "QBO"
        obj["sparse"] = False
        obj["MetaData"] = {
            "CreateTime": current["MetaData"]["CreateTime"],
            "LastUpdatedTime": intuit_time(now),
        }
        self.objects[spec.name][current["Id"]] = obj

    def _normalize(
        self, spec: EntitySpec, obj: dict[str, Any], now: datetime, existing_id: str | None
    ) -> dict[str, Any]:
        normalizer = getattr(self, f"_normalize_{spec.name.lower()}")
        normalizer(obj, now.date(), existing_id)
        return obj

    def _require_unique_name(self, spec: EntitySpec, name: str, existing_id: str | None) -> None:
        assert spec.name_field is not None
        for other in self.objects[spec.name].values():
            if other["Id"] != existing_id and other[spec.name_field].lower() == name.lower():
                raise faults.duplicate_name(name)

    def _reference(self, obj: dict[str, Any], element: str, entity: str, *, required: bool):
        """Check a `{"value": id}` reference and fill in its `name`."""
        ref = obj.get(element)
        if ref is None:
            if required:
                raise faults.required_param_missing(element)
            return None
        if not isinstance(ref, dict) or not ref.get("value"):
            raise faults.invalid_reference(element, ref)
        target = self.objects[entity].get(str(ref["value"]))
        if target is None:
            raise faults.invalid_reference(element, ref["value"])
        if target.get("Active") is False:
            raise faults.inactive_reference(element)
        spec = ENTITY_SPECS[entity]
        obj[element] = {"value": target["Id"], "name": target[spec.name_field or "Id"]}
        return target

    def _normalize_companyinfo(self, obj: dict, today: date, existing_id: str | None) -> None:
        if not obj.get("CompanyName"):
            raise faults.required_param_missing("CompanyName")
        obj.setdefault("LegalName", obj["CompanyName"])
        obj.update(
            Country="US",
            FiscalYearStartMonth="January",
            SupportedLanguages="en",
            CompanyStartDate=obj.get("CompanyStartDate") or today.isoformat(),
            NameValue=[{"Name": "NeoEnabled", "Value": "true"}],
        )

    def _normalize_person(self, spec: EntitySpec, obj: dict, existing_id: str | None) -> None:
        if not obj.get("DisplayName"):
            parts = [obj.get(k) for k in ("GivenName", "MiddleName", "FamilyName") if obj.get(k)]
            obj["DisplayName"] = " ".join(parts) or obj.get("CompanyName") or ""
        if not obj["DisplayName"]:
            raise faults.required_param_missing("DisplayName")
        self._require_unique_name(spec, obj["DisplayName"], existing_id)
        obj.setdefault("Active", True)
        obj.setdefault("PrintOnCheckName", obj["DisplayName"])
        obj.setdefault("CurrencyRef", dict(USD))

    def _normalize_customer(self, obj: dict, today: date, existing_id: str | None) -> None:
        self._normalize_person(ENTITY_SPECS["Customer"], obj, existing_id)
        obj["FullyQualifiedName"] = obj["DisplayName"]
        obj.setdefault("Taxable", False)
        obj.setdefault("Job", False)
        obj.setdefault("PreferredDeliveryMethod", "Print")

    def _normalize_vendor(self, obj: dict, today: date, existing_id: str | None) -> None:
        self._normalize_person(ENTITY_SPECS["Vendor"], obj, existing_id)
        obj.setdefault("Vendor1099", False)

    def _normalize_item(self, obj: dict, today: date, existing_id: str | None) -> None:
        if not obj.get("Name"):
            raise faults.required_param_missing("Name")
        self._require_unique_name(ENTITY_SPECS["Item"], obj["Name"], existing_id)
        obj.setdefault("Type", "Service")
        if obj["Type"] not in ITEM_TYPES:
            raise faults.invalid_value("Type", f"Item Type must be one of {', '.join(ITEM_TYPES)}")
        self._reference(obj, "IncomeAccountRef", "Account", required=True)
        self._reference(obj, "ExpenseAccountRef", "Account", required=False)
        obj["UnitPrice"] = json_amount(self._amount(obj.get("UnitPrice", 0), "UnitPrice"))
        obj.setdefault("Active", True)
        obj.setdefault("Taxable", False)
        obj["FullyQualifiedName"] = obj["Name"]

    def _normalize_account(self, obj: dict, today: date, existing_id: str | None) -> None:
        if not obj.get("Name"):
            raise faults.required_param_missing("Name")
        self._require_unique_name(ENTITY_SPECS["Account"], obj["Name"], existing_id)
        account_type = obj.get("AccountType")
        if not account_type:
            raise faults.required_param_missing("AccountType")
        if account_type not in ACCOUNT_TYPES:
            raise faults.invalid_value("AccountType", f"Invalid AccountType: {account_type}")
        classification, default_subtype = ACCOUNT_TYPES[account_type]
        obj.setdefault("AccountSubType", default_subtype)
        obj["Classification"] = classification
        obj.setdefault("Active", True)
        obj.setdefault("CurrencyRef", dict(USD))
        obj["FullyQualifiedName"] = obj["Name"]
        obj["SubAccount"] = False
        obj.setdefault("CurrentBalance", 0)

    def _normalize_invoice(self, obj: dict, today: date, existing_id: str | None) -> None:
        self._reference(obj, "CustomerRef", "Customer", required=True)
        txn_date = self._date(obj, "TxnDate", today)
        self._date(obj, "DueDate", txn_date + timedelta(days=30))
        if not obj.get("DocNumber"):
            obj["DocNumber"] = str(self._next_doc_number)
            self._next_doc_number += 1
        obj["Line"] = self._sales_lines(obj.get("Line"))
        obj.setdefault("CurrencyRef", dict(USD))
        obj.setdefault("EmailStatus", "NotSet")
        obj.setdefault("PrintStatus", "NeedToPrint")

    def _normalize_bill(self, obj: dict, today: date, existing_id: str | None) -> None:
        self._reference(obj, "VendorRef", "Vendor", required=True)
        txn_date = self._date(obj, "TxnDate", today)
        self._date(obj, "DueDate", txn_date + timedelta(days=30))
        obj["Line"] = self._expense_lines(obj.get("Line"))
        obj["APAccountRef"] = self._role_ref("ap")
        obj.setdefault("CurrencyRef", dict(USD))

    def _normalize_payment(self, obj: dict, today: date, existing_id: str | None) -> None:
        customer = self._reference(obj, "CustomerRef", "Customer", required=True)
        self._date(obj, "TxnDate", today)
        if obj.get("TotalAmt") is None:
            raise faults.required_param_missing("TotalAmt")
        total = self._amount(obj["TotalAmt"], "TotalAmt")
        if total < 0:
            raise faults.invalid_value("TotalAmt", "TotalAmt cannot be negative")
        obj["TotalAmt"] = json_amount(total)
        if obj.get("DepositToAccountRef"):
            self._reference(obj, "DepositToAccountRef", "Account", required=True)
        else:
            obj["DepositToAccountRef"] = self._role_ref("bank")
        already_applied = self._applied_to_invoices(exclude_payment=existing_id)
        lines = []
        applied_total = Decimal(0)
        for index, line in enumerate(obj.get("Line") or []):
            element = f"Line[{index}]"
            amount = self._amount(line.get("Amount"), f"{element}.Amount")
            linked = line.get("LinkedTxn") or []
            if len(linked) != 1 or linked[0].get("TxnType") != "Invoice":
                raise faults.invalid_value(element, "Each payment line links one Invoice")
            invoice = self.objects["Invoice"].get(str(linked[0].get("TxnId")))
            if invoice is None:
                raise faults.invalid_reference(f"{element}.LinkedTxn", linked[0].get("TxnId"))
            if invoice["CustomerRef"]["value"] != customer["Id"]:
                raise faults.business_validation("The invoice belongs to a different customer.")
            open_amount = money(invoice["TotalAmt"]) - already_applied.get(invoice["Id"], 0)
            if amount > open_amount:
                raise faults.business_validation(
                    f"Payment line amount {amount} exceeds the open balance {open_amount} "
                    f"of invoice {invoice['DocNumber']}."
                )
            applied_total += amount
            lines.append(
                {
                    "Amount": json_amount(amount),
                    "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}],
                }
            )
        if applied_total > total:
            raise faults.business_validation("The amounts applied exceed the payment total.")
        obj["Line"] = lines
        obj["UnappliedAmt"] = json_amount(total - applied_total)
        obj["ProcessPayment"] = False
        obj.setdefault("CurrencyRef", dict(USD))

    def _sales_lines(self, lines: Any) -> list[dict[str, Any]]:
        if not lines:
            raise faults.required_param_missing("Line")
        if not isinstance(lines, list):
            raise faults.invalid_value("Line", "Line must be a list")
        result: list[dict[str, Any]] = []
        for index, line in enumerate(lines):
            element = f"Line[{index}]"
            detail_type = line.get("DetailType") if isinstance(line, dict) else None
            if detail_type == "SubTotalLineDetail":
                continue  # recomputed below
            if detail_type not in ("SalesItemLineDetail", "DescriptionOnly"):
                raise faults.invalid_value(
                    f"{element}.DetailType",
                    "DetailType must be SalesItemLineDetail, DescriptionOnly or SubTotalLineDetail",
                )
            number = len(result) + 1
            new_line: dict[str, Any] = {"Id": str(number), "LineNum": number}
            if line.get("Description"):
                new_line["Description"] = line["Description"]
            if detail_type == "DescriptionOnly":
                new_line.update(Amount=0, DetailType=detail_type, DescriptionLineDetail={})
                result.append(new_line)
                continue
            detail = copy.deepcopy(line.get("SalesItemLineDetail") or {})
            if "ItemRef" not in detail:
                detail["ItemRef"] = {"value": self.account_roles["default_item"]}
            self._reference(detail, "ItemRef", "Item", required=True)
            amount = self._line_amount(line, detail, element)
            detail.setdefault("TaxCodeRef", {"value": "NON"})
            new_line.update(Amount=json_amount(amount), DetailType=detail_type)
            new_line[detail_type] = detail
            result.append(new_line)
        if not any(line["DetailType"] == "SalesItemLineDetail" for line in result):
            raise faults.required_param_missing("Line.SalesItemLineDetail")
        return result

    def _line_amount(self, line: dict, detail: dict, element: str) -> Decimal:
        quantity = detail.get("Qty")
        unit_price = detail.get("UnitPrice")
        if line.get("Amount") is None:
            if quantity is None or unit_price is None:
                raise faults.required_param_missing(f"{element}.Amount")
            return money(self._decimal(quantity, "Qty") * self._decimal(unit_price, "UnitPrice"))
        amount = self._amount(line["Amount"], f"{element}.Amount")
        if quantity is not None and unit_price is not None:
            expected = money(
                self._decimal(quantity, "Qty") * self._decimal(unit_price, "UnitPrice")
            )
            if expected != amount:
                raise IntuitFault(
                    "6070",
                    "Amount is not equal to UnitPrice * Qty",
                    f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}",
                    element=element,
                )
        return amount

    def _expense_lines(self, lines: Any) -> list[dict[str, Any]]:
        if not lines:
            raise faults.required_param_missing("Line")
        if not isinstance(lines, list):
            raise faults.invalid_value("Line", "Line must be a list")
        result = []
        for index, line in enumerate(lines):
            element = f"Line[{index}]"
            detail_type = line.get("DetailType") if isinstance(line, dict) else None
            number = index + 1
            new_line: dict[str, Any] = {"Id": str(number), "LineNum": number}
            if line.get("Description"):
                new_line["Description"] = line["Description"]
            amount = self._amount(line.get("Amount"), f"{element}.Amount")
            detail = copy.deepcopy(line.get(detail_type) or {}) if detail_type else {}
            if detail_type == "AccountBasedExpenseLineDetail":
                self._reference(detail, "AccountRef", "Account", required=True)
            elif detail_type == "ItemBasedExpenseLineDetail":
                self._reference(detail, "ItemRef", "Item", required=True)
            else:
                raise faults.invalid_value(
                    f"{element}.DetailType",
                    "DetailType must be AccountBasedExpenseLineDetail or "
                    "ItemBasedExpenseLineDetail",
                )
            new_line.update(Amount=json_amount(amount), DetailType=detail_type)
            new_line[detail_type] = detail
            result.append(new_line)
        return result

    def _role_ref(self, role: str) -> dict[str, str]:
        account = self.objects["Account"][self.account_roles[role]]
        return {"value": account["Id"], "name": account["Name"]}

    @staticmethod
    def _decimal(value: Any, element: str) -> Decimal:
        if isinstance(value, bool):
            raise faults.invalid_value(element, f"{element} must be a number")
        try:
            return Decimal(str(value))
        except (InvalidOperation, ValueError):
            raise faults.invalid_value(element, f"{element} must be a number") from None

    def _amount(self, value: Any, element: str) -> Decimal:
        if value is None:
            raise faults.required_param_missing(element)
        return self._decimal(value, element).quantize(CENT)

    @staticmethod
    def _date(obj: dict, element: str, default: date) -> date:
        value = obj.get(element)
        if value in (None, ""):
            obj[element] = default.isoformat()
            return default
        if not isinstance(value, str) or not _DATE_PATTERN.match(value):
            raise faults.invalid_value(element, f"{element} must be a date (YYYY-MM-DD)")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise faults.invalid_value(element, f"{element} is not a valid date") from None

    def _unlink_payments_from(self, invoice_id: str, now: datetime) -> None:
        """Deleting an invoice leaves its payments unapplied (Intuit keeps the money)."""
        for payment in self.objects["Payment"].values():
            kept = [line for line in payment["Line"] if line["LinkedTxn"][0]["TxnId"] != invoice_id]
            if len(kept) != len(payment["Line"]):
                payment["Line"] = kept
                payment["SyncToken"] = str(int(payment["SyncToken"]) + 1)
                payment["MetaData"]["LastUpdatedTime"] = intuit_time(now)

    # --- derived numbers --------------------------------------------------------------------

    def _applied_to_invoices(self, exclude_payment: str | None) -> dict[str, Decimal]:
        applied: dict[str, Decimal] = {}
        for payment in self.objects["Payment"].values():
            if payment["Id"] == exclude_payment:
                continue
            for line in payment["Line"]:
                invoice_id = line["LinkedTxn"][0]["TxnId"]
                applied[invoice_id] = applied.get(invoice_id, Decimal(0)) + money(line["Amount"])
        return applied

    def recompute(self) -> None:
        """Refresh every derived number from the transactions."""
        from .ledger import account_balances  # the ledger reads this module's objects

        applied = self._applied_to_invoices(exclude_payment=None)
        payments_by_invoice: dict[str, list[str]] = {}
        for payment in self.objects["Payment"].values():
            for line in payment["Line"]:
                invoice_id = line["LinkedTxn"][0]["TxnId"]
                payments_by_invoice.setdefault(invoice_id, []).append(payment["Id"])
        customer_balances: dict[str, Decimal] = {}
        for invoice in self.objects["Invoice"].values():
            total = sum((money(line["Amount"]) for line in _sales_item_lines(invoice)), Decimal(0))
            balance = total - applied.get(invoice["Id"], Decimal(0))
            invoice["Line"] = [
                line for line in invoice["Line"] if line["DetailType"] != "SubTotalLineDetail"
            ]
            invoice["Line"].append(
                {
                    "Amount": json_amount(total),
                    "DetailType": "SubTotalLineDetail",
                    "SubTotalLineDetail": {},
                }
            )
            invoice["TotalAmt"] = json_amount(total)
            invoice["HomeBalance"] = invoice["Balance"] = json_amount(balance)
            invoice["LinkedTxn"] = [
                {"TxnId": payment_id, "TxnType": "Payment"}
                for payment_id in payments_by_invoice.get(invoice["Id"], [])
            ]
            customer_id = invoice["CustomerRef"]["value"]
            customer_balances[customer_id] = customer_balances.get(customer_id, 0) + balance
        for customer in self.objects["Customer"].values():
            balance = customer_balances.get(customer["Id"], Decimal(0))
            customer["Balance"] = customer["BalanceWithJobs"] = json_amount(balance)

        vendor_balances: dict[str, Decimal] = {}
        for bill in self.objects["Bill"].values():
            total = sum((money(line["Amount"]) for line in bill["Line"]), Decimal(0))
            paid = min(self.bill_paid.get(bill["Id"], Decimal(0)), total)
            bill["TotalAmt"] = json_amount(total)
            bill["Balance"] = json_amount(total - paid)
            bill.setdefault("LinkedTxn", [])
            vendor_id = bill["VendorRef"]["value"]
            vendor_balances[vendor_id] = vendor_balances.get(vendor_id, 0) + total - paid
        for vendor in self.objects["Vendor"].values():
            vendor["Balance"] = json_amount(vendor_balances.get(vendor["Id"], Decimal(0)))

        balances = account_balances(self, method="Accrual", through=None)
        for account in self.objects["Account"].values():
            amount = json_amount(balances.get(account["Id"], Decimal(0)))
            account["CurrentBalance"] = account["CurrentBalanceWithSubAccounts"] = amount


def _sales_item_lines(invoice: dict[str, Any]) -> Iterable[dict[str, Any]]:
    return (line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail")


def _id_sort_key(entity_id: str) -> tuple[int, str]:
    return (int(entity_id), "") if entity_id.isdigit() else (0, entity_id)
