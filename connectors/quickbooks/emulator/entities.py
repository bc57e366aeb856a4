"""The entity types the emulator stores: which fields each accepts, and amount helpers."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

CENT = Decimal("0.01")
USD = {"value": "USD", "name": "United States Dollar"}


def money(value: Any) -> Decimal:
    """A stored or sent amount as Decimal cents."""
    return Decimal(str(value)).quantize(CENT)


def json_amount(value: Decimal) -> float:
    """Amounts go out as JSON numbers, like Intuit's."""
    return float(value)


@dataclass(frozen=True)
class EntitySpec:
    """What the emulator knows about one entity type."""

    name: str
    kind: str  # "name_list", "transaction" or "company"
    writable: frozenset[str]
    computed: frozenset[str] = frozenset()
    name_field: str | None = None

    @property
    def path(self) -> str:
        return self.name.lower()


ALWAYS_ACCEPTED = frozenset({"Id", "SyncToken", "sparse", "domain", "MetaData", "status"})
_PERSON_FIELDS = frozenset(
    {
        "DisplayName",
        "Title",
        "GivenName",
        "MiddleName",
        "FamilyName",
        "Suffix",
        "CompanyName",
        "PrintOnCheckName",
        "Active",
        "PrimaryEmailAddr",
        "PrimaryPhone",
        "Mobile",
        "Fax",
        "WebAddr",
        "BillAddr",
        "CurrencyRef",
        "Notes",
    }
)

ENTITY_SPECS: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in (
        EntitySpec(
            "CompanyInfo",
            "company",
            frozenset(
                {
                    "CompanyName",
                    "LegalName",
                    "CompanyAddr",
                    "CustomerCommunicationAddr",
                    "LegalAddr",
                    "PrimaryPhone",
                    "Email",
                    "WebAddr",
                }
            ),
            frozenset(
                {"Country", "FiscalYearStartMonth", "SupportedLanguages", "NameValue"}
                | {"CompanyStartDate"}
            ),
        ),
        EntitySpec(
            "Customer",
            "name_list",
            _PERSON_FIELDS
            | {"ShipAddr", "Taxable", "PreferredDeliveryMethod", "SalesTermRef", "Job"}
            | {"PaymentMethodRef", "ResaleNum", "BillWithParent", "ParentRef"},
            frozenset({"Balance", "BalanceWithJobs", "FullyQualifiedName"}),
            name_field="DisplayName",
        ),
        EntitySpec(
            "Vendor",
            "name_list",
            _PERSON_FIELDS | {"AcctNum", "Vendor1099", "TermRef", "TaxIdentifier"},
            frozenset({"Balance"}),
            name_field="DisplayName",
        ),
        EntitySpec(
            "Item",
            "name_list",
            frozenset(
                {"Name", "Description", "Active", "Type", "UnitPrice", "IncomeAccountRef"}
                | {"ExpenseAccountRef", "PurchaseDesc", "PurchaseCost", "Taxable", "Sku"}
            ),
            frozenset({"FullyQualifiedName", "Level"}),
            name_field="Name",
        ),
        EntitySpec(
            "Account",
            "name_list",
            frozenset(
                {"Name", "AccountType", "AccountSubType", "Description", "Active", "AcctNum"}
                | {"CurrencyRef"}
            ),
            frozenset(
                {"Classification", "CurrentBalance", "CurrentBalanceWithSubAccounts"}
                | {"FullyQualifiedName", "SubAccount"}
            ),
            name_field="Name",
        ),
        EntitySpec(
            "Invoice",
            "transaction",
            frozenset(
                {"CustomerRef", "Line", "TxnDate", "DueDate", "DocNumber", "CustomerMemo"}
                | {"PrivateNote", "BillEmail", "BillAddr", "ShipAddr", "SalesTermRef"}
                | {"EmailStatus", "PrintStatus", "CurrencyRef", "AllowOnlineACHPayment"}
                | {"AllowOnlineCreditCardPayment", "ClassRef", "DepartmentRef"}
            ),
            frozenset({"TotalAmt", "Balance", "LinkedTxn", "HomeBalance"}),
        ),
        EntitySpec(
            "Bill",
            "transaction",
            frozenset(
                {"VendorRef", "Line", "TxnDate", "DueDate", "DocNumber", "PrivateNote"}
                | {"APAccountRef", "SalesTermRef", "CurrencyRef"}
            ),
            frozenset({"TotalAmt", "Balance", "LinkedTxn"}),
        ),
        EntitySpec(
            "Payment",
            "transaction",
            frozenset(
                {"CustomerRef", "TotalAmt", "Line", "TxnDate", "PaymentRefNum", "PrivateNote"}
                | {"DepositToAccountRef", "PaymentMethodRef", "CurrencyRef", "ARAccountRef"}
            ),
            frozenset({"UnappliedAmt", "ProcessPayment"}),
        ),
    )
}

ENTITY_BY_PATH: dict[str, EntitySpec] = {spec.path: spec for spec in ENTITY_SPECS.values()}

# AccountType -> (Classification, default AccountSubType)
ACCOUNT_TYPES: dict[str, tuple[str, str]] = {
    "Bank": ("Asset", "Checking"),
    "Accounts Receivable": ("Asset", "AccountsReceivable"),
    "Other Current Asset": ("Asset", "OtherCurrentAssets"),
    "Fixed Asset": ("Asset", "MachineryAndEquipment"),
    "Other Asset": ("Asset", "OtherLongTermAssets"),
    "Accounts Payable": ("Liability", "AccountsPayable"),
    "Credit Card": ("Liability", "CreditCard"),
    "Other Current Liability": ("Liability", "OtherCurrentLiabilities"),
    "Long Term Liability": ("Liability", "OtherLongTermLiabilities"),
    "Equity": ("Equity", "OpeningBalanceEquity"),
    "Income": ("Revenue", "ServiceFeeIncome"),
    "Other Income": ("Revenue", "OtherMiscellaneousIncome"),
    "Cost of Goods Sold": ("Expense", "SuppliesMaterialsCogs"),
    "Expense": ("Expense", "OtherMiscellaneousServiceCost"),
    "Other Expense": ("Expense", "OtherMiscellaneousExpense"),
}

ITEM_TYPES = ("Service", "NonInventory", "Inventory")
