"""The sample company every new realm starts with: same names and amounts every time.

Dates are relative to the day the company is created, so "overdue" keeps meaning overdue: of the
ten invoices two are paid, two part-paid, three overdue and unpaid, three current.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from .company import Company

# (name, AccountType, AccountSubType, role in the books or None)
ACCOUNTS = (
    ("Checking", "Bank", "Checking", "bank"),
    ("Savings", "Bank", "Savings", None),
    ("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable", "ar"),
    ("Undeposited Funds", "Other Current Asset", "UndepositedFunds", None),
    ("Accounts Payable (A/P)", "Accounts Payable", "AccountsPayable", "ap"),
    ("Opening Balance Equity", "Equity", "OpeningBalanceEquity", "opening_equity"),
    ("Retained Earnings", "Equity", "RetainedEarnings", "retained_earnings"),
    ("Services", "Income", "ServiceFeeIncome", None),
    ("Sales of Product Income", "Income", "SalesOfProductIncome", None),
    ("Uncategorized Income", "Income", "OtherPrimaryIncome", "uncategorized_income"),
    ("Cost of Goods Sold", "Cost of Goods Sold", "SuppliesMaterialsCogs", "cogs"),
    ("Advertising", "Expense", "AdvertisingPromotional", None),
    ("Rent or Lease", "Expense", "RentOrLeaseOfBuildings", None),
    ("Utilities", "Expense", "Utilities", None),
    ("Office Expenses", "Expense", "OfficeGeneralAdministrativeExpenses", None),
    ("Legal & Professional Fees", "Expense", "LegalProfessionalFees", None),
)

# (display name, given name, family name, email, city)
CUSTOMERS = (
    ("Harbor Street Bakery", None, None, "orders@harborbakery.example", "Portland"),
    ("Juniper Design Studio", None, None, "hello@juniperdesign.example", "Seattle"),
    ("Northwind Cycling Club", None, None, "treasurer@northwindcc.example", "Tacoma"),
    ("Maya Patel", "Maya", "Patel", "maya.patel@example.com", "Eugene"),
    ("Oak & Ember Restaurant", None, None, "books@oakandember.example", "Portland"),
    ("Riverside Dental", None, None, "office@riversidedental.example", "Salem"),
)

VENDORS = (
    ("Pacific Power & Light", "billing@pacificpower.example"),
    ("Cornerstone Properties", "rent@cornerstone.example"),
    ("Brightline Marketing", "ar@brightline.example"),
    ("Paperclip Office Supply", "sales@paperclip.example"),
    ("Kline & Associates CPAs", "office@klinecpa.example"),
)

# (name, Type, unit price, income account, description)
ITEMS = (
    ("Consulting", "Service", "150.00", "Services", "Consulting, per hour"),
    ("Design", "Service", "120.00", "Services", "Design work, per hour"),
    ("Website Hosting", "Service", "45.00", "Services", "Managed hosting, per month"),
    ("Training Workshop", "Service", "900.00", "Services", "Half-day on-site workshop"),
    ("Printed Brochures", "NonInventory", "2.50", "Sales of Product Income", "Tri-fold, each"),
)

# (customer index, days ago, payment terms in days, [(item index, quantity)])
INVOICES = (
    (0, 75, 30, [(0, 10)]),
    (1, 60, 30, [(1, 12)]),
    (2, 45, 15, [(3, 1)]),
    (3, 40, 30, [(0, 3), (2, 1)]),
    (4, 100, 30, [(4, 400), (1, 5)]),
    (5, 20, 30, [(0, 8)]),
    (0, 10, 30, [(2, 3)]),
    (1, 5, 15, [(1, 6)]),
    (2, 130, 30, [(3, 2)]),
    (5, 35, 30, [(0, 4), (4, 200)]),
)

# (invoice index, days ago, amount)
PAYMENTS = (
    (0, 50, "1500.00"),
    (1, 30, "500.00"),
    (3, 15, "495.00"),
    (9, 3, "250.00"),
)

# (vendor index, days ago, terms, expense account, amount, amount already paid)
BILLS = (
    (1, 60, 15, "Rent or Lease", "2400.00", "2400.00"),
    (1, 30, 15, "Rent or Lease", "2400.00", "2400.00"),
    (0, 25, 30, "Utilities", "310.45", "0"),
    (2, 50, 30, "Advertising", "1250.00", "0"),
    (3, 12, 30, "Office Expenses", "186.20", "0"),
    (4, 95, 30, "Legal & Professional Fees", "750.00", "0"),
)

OPENING_BALANCES = (("Checking", "25000.00"), ("Savings", "10000.00"))


def seed_company(company: Company, now: datetime) -> None:
    """Fill an empty company with the sample books."""
    today = now.date()

    def days_ago(days: int) -> str:
        return (today - timedelta(days=days)).isoformat()

    company.install_company_info(
        {
            "CompanyName": company.name,
            "LegalName": f"{company.name} LLC",
            "CompanyAddr": {
                "Line1": "123 Sierra Way",
                "City": "Portland",
                "CountrySubDivisionCode": "OR",
                "PostalCode": "97205",
                "Country": "US",
            },
            "Email": {"Address": "books@sandbox-company.example"},
            "PrimaryPhone": {"FreeFormNumber": "(503) 555-0100"},
            "WebAddr": {"URI": "https://sandbox-company.example"},
        },
        now,
    )

    account_ids: dict[str, str] = {}
    for name, account_type, subtype, role in ACCOUNTS:
        account = company.create(
            "Account", {"Name": name, "AccountType": account_type, "AccountSubType": subtype}, now
        )
        account_ids[name] = account["Id"]
        if role:
            company.account_roles[role] = account["Id"]

    customer_ids = []
    for display_name, given, family, email, city in CUSTOMERS:
        body = {
            "DisplayName": display_name,
            "PrimaryEmailAddr": {"Address": email},
            "BillAddr": {"City": city, "CountrySubDivisionCode": "OR", "Country": "US"},
        }
        if given:
            body.update(GivenName=given, FamilyName=family)
        else:
            body["CompanyName"] = display_name
        customer_ids.append(company.create("Customer", body, now)["Id"])

    vendor_ids = [
        company.create(
            "Vendor",
            {"DisplayName": name, "CompanyName": name, "PrimaryEmailAddr": {"Address": email}},
            now,
        )["Id"]
        for name, email in VENDORS
    ]

    item_ids = []
    for name, item_type, price, income_account, description in ITEMS:
        body = {
            "Name": name,
            "Type": item_type,
            "UnitPrice": float(price),
            "Description": description,
            "IncomeAccountRef": {"value": account_ids[income_account]},
        }
        if item_type == "NonInventory":
            body["ExpenseAccountRef"] = {"value": account_ids["Cost of Goods Sold"]}
        item_ids.append(company.create("Item", body, now)["Id"])
    company.account_roles["default_item"] = item_ids[0]

    for account_name, amount in OPENING_BALANCES:
        company.add_opening_balance(
            account_ids[account_name], Decimal(amount), today - timedelta(days=365)
        )

    invoice_ids = []
    for customer_index, age, terms, lines in INVOICES:
        body = {
            "CustomerRef": {"value": customer_ids[customer_index]},
            "TxnDate": days_ago(age),
            "DueDate": days_ago(age - terms),
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": float(Decimal(ITEMS[item_index][2]) * quantity),
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": item_ids[item_index]},
                        "Qty": quantity,
                        "UnitPrice": float(ITEMS[item_index][2]),
                    },
                }
                for item_index, quantity in lines
            ],
        }
        invoice_ids.append(company.create("Invoice", body, now)["Id"])

    for invoice_index, age, amount in PAYMENTS:
        invoice = company.get("Invoice", invoice_ids[invoice_index])
        company.create(
            "Payment",
            {
                "CustomerRef": {"value": invoice["CustomerRef"]["value"]},
                "TxnDate": days_ago(age),
                "TotalAmt": float(amount),
                "Line": [
                    {
                        "Amount": float(amount),
                        "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}],
                    }
                ],
            },
            now,
        )

    for vendor_index, age, terms, account_name, amount, paid in BILLS:
        bill = company.create(
            "Bill",
            {
                "VendorRef": {"value": vendor_ids[vendor_index]},
                "TxnDate": days_ago(age),
                "DueDate": days_ago(age - terms),
                "Line": [
                    {
                        "DetailType": "AccountBasedExpenseLineDetail",
                        "Amount": float(amount),
                        "AccountBasedExpenseLineDetail": {
                            "AccountRef": {"value": account_ids[account_name]}
                        },
                    }
                ],
            },
            now,
        )
        company.bill_paid[bill["Id"]] = Decimal(paid)
    company.recompute()
