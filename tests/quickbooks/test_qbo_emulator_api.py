"""The emulator's Accounting API over real HTTP: query grammar, CRUD rules, faults, throttling."""

from __future__ import annotations

import threading
import time
from datetime import date

import httpx
import pytest

from connectors.quickbooks.transport import shared_ssl_context

TLS = shared_ssl_context()  # one CA bundle load for the whole module


@pytest.fixture
def connected(qbo_emulator):
    return qbo_emulator.connect()


@pytest.fixture
def api(qbo_emulator, connected):
    """HTTP client for the connected company's /v3/company/{realm} URLs.

    Intuit's 10-per-second limit is switched off so a test may make more calls than that in a
    second; the throttling tests below switch limits on themselves.
    """
    qbo_emulator.emulator.configure(throttle_per_second=None)
    realm = connected["realmId"]
    with httpx.Client(
        verify=TLS,
        base_url=f"{qbo_emulator.base_url}/v3/company/{realm}",
        headers={
            "Authorization": f"Bearer {connected['access_token']}",
            "Accept": "application/json",
        },
        params={"minorversion": "75"},
    ) as client:
        yield client


def query(api, sql):
    return api.get("/query", params={"query": sql})


def rows(api, sql, entity):
    response = query(api, sql)
    assert response.status_code == 200, response.text
    return response.json()["QueryResponse"].get(entity, [])


def first_error(response):
    return response.json()["Fault"]["Error"][0]


def add_customers(qbo_emulator, realm, names):
    """Create objects in-process (not over HTTP) so setup does not count against throttling."""
    emulator = qbo_emulator.emulator
    with emulator.lock:
        company = emulator.company(realm)
        return [company.create("Customer", {"DisplayName": n}, emulator.clock.now()) for n in names]


# --- reads --------------------------------------------------------------------------------


def test_company_info(api, connected):
    realm = connected["realmId"]
    response = api.get(f"/companyinfo/{realm}")

    assert response.status_code == 200
    info = response.json()["CompanyInfo"]
    assert info["CompanyName"] == "Sandbox Company_US_1"
    assert info["Id"] == "1" and info["SyncToken"] == "0"
    assert "time" in response.json()


def test_read_by_id_and_object_not_found(api):
    customer = api.get("/customer/1").json()["Customer"]
    missing = api.get("/customer/999")

    assert customer["DisplayName"] == "Harbor Street Bakery"
    assert customer["MetaData"]["CreateTime"] and customer["MetaData"]["LastUpdatedTime"]
    assert missing.status_code == 400
    assert first_error(missing)["code"] == "610"
    assert missing.json()["Fault"]["type"] == "ValidationFault"


def test_seeded_company_has_realistic_books(api, qbo_emulator):
    invoices = rows(api, "SELECT * FROM Invoice MAXRESULTS 1000", "Invoice")
    today = qbo_emulator.emulator.clock.now().date()

    assert len(invoices) == 10
    overdue = [i for i in invoices if i["Balance"] > 0 and date.fromisoformat(i["DueDate"]) < today]
    paid = [i for i in invoices if i["Balance"] == 0]
    assert len(overdue) >= 3 and len(paid) >= 2
    for kind, expected in [
        ("Customer", 6),
        ("Vendor", 5),
        ("Item", 5),
        ("Bill", 6),
        ("Payment", 4),
    ]:
        assert len(rows(api, f"SELECT * FROM {kind}", kind)) == expected
    assert len(rows(api, "SELECT * FROM Account", "Account")) >= 10


# --- the query grammar --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "entity", "expected_names"),
    [
        (
            "SELECT * FROM Customer WHERE DisplayName LIKE 'J%'",
            "Customer",
            ["Juniper Design Studio"],
        ),
        (
            "select * from customer where displayname like '%dental'",
            "Customer",
            ["Riverside Dental"],
        ),
        ("SELECT * FROM Customer WHERE DisplayName = 'Maya Patel'", "Customer", ["Maya Patel"]),
        (
            "SELECT * FROM Customer WHERE Id IN ('1', '3') ORDERBY DisplayName DESC",
            "Customer",
            ["Northwind Cycling Club", "Harbor Street Bakery"],
        ),
        (
            "SELECT * FROM Customer WHERE Active = true AND GivenName = 'Maya'",
            "Customer",
            ["Maya Patel"],
        ),
        (
            "SELECT * FROM Vendor ORDERBY DisplayName STARTPOSITION 2 MAXRESULTS 2",
            "Vendor",
            ["Cornerstone Properties", "Kline & Associates CPAs"],
        ),
        (
            "SELECT * FROM Item WHERE UnitPrice >= '150' ORDERBY UnitPrice",
            "Item",
            ["Consulting", "Training Workshop"],
        ),
    ],
)
def test_query_accepts_the_intuit_grammar(api, sql, entity, expected_names):
    found = rows(api, sql, entity)

    name_field = "Name" if entity == "Item" else "DisplayName"
    assert [obj[name_field] for obj in found] == expected_names


def test_query_on_references_dates_and_nested_fields(api):
    invoices = rows(api, "SELECT * FROM Invoice MAXRESULTS 1000", "Invoice")
    some_due_date = sorted(i["DueDate"] for i in invoices)[4]

    by_customer = rows(api, "SELECT * FROM Invoice WHERE CustomerRef = '1'", "Invoice")
    due_before = rows(api, f"SELECT * FROM Invoice WHERE DueDate < '{some_due_date}'", "Invoice")
    changed = rows(
        api,
        "SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime > '2000-01-01T00:00:00-08:00'",
        "Invoice",
    )

    assert {i["Id"] for i in by_customer} == {
        i["Id"] for i in invoices if i["CustomerRef"]["value"] == "1"
    }
    assert len(due_before) == sum(1 for i in invoices if i["DueDate"] < some_due_date)
    assert len(changed) == 10


def test_query_count_and_empty_result(api):
    count = query(api, "SELECT count(*) FROM Invoice WHERE Balance > '0'").json()
    nothing = query(api, "SELECT * FROM Customer WHERE DisplayName = 'Nobody'").json()
    open_invoices = rows(api, "SELECT * FROM Invoice WHERE Balance > '0'", "Invoice")

    assert count["QueryResponse"] == {"totalCount": len(open_invoices)}
    assert nothing["QueryResponse"] == {}


def test_query_string_literal_with_an_escaped_quote(api, qbo_emulator, connected):
    add_customers(qbo_emulator, connected["realmId"], ["Amy's Cafe"])

    found = rows(api, "SELECT * FROM Customer WHERE DisplayName = 'Amy\\'s Cafe'", "Customer")

    assert [c["DisplayName"] for c in found] == ["Amy's Cafe"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM Customer WHERE DisplayName = 'a' OR DisplayName = 'b'",
        "SELECT * FROM Customer JOIN Invoice",
        "SELECT * FROM Invoice GROUP BY CustomerRef",
        "SELECT DisplayName FROM Customer",
        "SELECT * FROM Widget",
        "SELEC * FROM Customer",
        "SELECT * FROM Customer MAXRESULTS 1001",
        "SELECT * FROM Customer STARTPOSITION 0",
        "DELETE FROM Customer",
        "SELECT * FROM Customer WHERE Balance != '0'",
        "SELECT * FROM Customer WHERE NOT Active = true",
        "SELECT * FROM Customer ORDER BY DisplayName",
        "SELECT * FROM Customer WHERE DisplayName = 'unterminated",
        "SELECT * FROM Customer WHERE DisplayName LIKE 5",
    ],
)
def test_query_refusals_are_query_parser_faults(api, sql):
    response = query(api, sql)

    assert response.status_code == 400
    body = response.json()
    assert body["Fault"]["type"] == "ValidationFault"
    error = body["Fault"]["Error"][0]
    assert error["code"] == "4000"
    assert error["Message"] == "Error parsing query"
    assert error["Detail"].startswith("QueryParserError")
    assert "time" in body


def test_query_pagination_is_one_based_with_a_default_of_100(api, qbo_emulator, connected):
    add_customers(qbo_emulator, connected["realmId"], [f"Customer {n:03d}" for n in range(120)])
    total = 126

    default_page = query(api, "SELECT * FROM Customer").json()["QueryResponse"]
    pages = [
        query(api, f"SELECT * FROM Customer STARTPOSITION {start} MAXRESULTS 50").json()[
            "QueryResponse"
        ]
        for start in (1, 51, 101, 151)
    ]

    assert default_page["startPosition"] == 1 and default_page["maxResults"] == 100
    assert [p.get("maxResults") for p in pages] == [50, 50, 26, None]
    assert pages[3] == {}
    ids = [c["Id"] for p in pages[:3] for c in p["Customer"]]
    assert len(ids) == len(set(ids)) == total
    assert pages[2]["startPosition"] == 101


def test_query_by_post_body(api):
    response = api.post(
        "/query",
        content="SELECT count(*) FROM Vendor",
        headers={"Content-Type": "application/text"},
    )

    assert response.json()["QueryResponse"] == {"totalCount": 5}


# --- writes -------------------------------------------------------------------------------


def test_create_then_stale_sync_token_is_refused(api):
    created = api.post("/customer", json={"DisplayName": "Lumen Labs"}).json()["Customer"]
    first = api.post(
        "/customer",
        json={"Id": created["Id"], "SyncToken": "0", "sparse": True, "Notes": "first"},
    )
    stale = api.post(
        "/customer",
        json={"Id": created["Id"], "SyncToken": "0", "sparse": True, "Notes": "second"},
    )

    assert created["SyncToken"] == "0" and created["Id"]
    assert first.json()["Customer"]["SyncToken"] == "1"
    assert stale.status_code == 400
    assert first_error(stale)["code"] == "5010"
    assert first_error(stale)["Message"] == "Stale Object Error"
    assert api.get(f"/customer/{created['Id']}").json()["Customer"]["Notes"] == "first"


def test_sparse_update_keeps_other_fields_and_full_update_clears_them(api):
    created = api.post(
        "/customer",
        json={
            "DisplayName": "Lumen Labs",
            "PrimaryEmailAddr": {"Address": "hi@lumen.example"},
            "PrimaryPhone": {"FreeFormNumber": "555-0101"},
        },
    ).json()["Customer"]

    sparse = api.post(
        "/customer",
        json={"Id": created["Id"], "SyncToken": "0", "sparse": True, "Notes": "VIP"},
    ).json()["Customer"]
    full = api.post(
        "/customer",
        json={"Id": created["Id"], "SyncToken": "1", "DisplayName": "Lumen Labs Inc"},
    ).json()["Customer"]

    assert sparse["PrimaryEmailAddr"] == {"Address": "hi@lumen.example"}
    assert sparse["Notes"] == "VIP"
    assert full["DisplayName"] == "Lumen Labs Inc"
    assert "PrimaryEmailAddr" not in full and "Notes" not in full and "PrimaryPhone" not in full
    assert full["SyncToken"] == "2"
    assert full["MetaData"]["CreateTime"] == created["MetaData"]["CreateTime"]


@pytest.mark.parametrize(
    ("body", "code", "element"),
    [
        ({"Notes": "no name"}, "2020", "DisplayName"),
        ({"DisplayName": "Harbor Street Bakery"}, "6240", None),
        ({"DisplayName": "X", "FavouriteColour": "green"}, "2010", "FavouriteColour"),
    ],
)
def test_write_validation_faults(api, body, code, element):
    response = api.post("/customer", json=body)

    assert response.status_code == 400
    error = first_error(response)
    assert error["code"] == code
    if element:
        assert error["element"] == element


def test_invoice_totals_and_payments_reduce_the_balance(api):
    invoice = api.post(
        "/invoice",
        json={
            "CustomerRef": {"value": "4"},
            "TxnDate": "2025-03-01",
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 2, "UnitPrice": 150},
                },
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 45,
                    "SalesItemLineDetail": {"ItemRef": {"value": "3"}},
                },
            ],
        },
    ).json()["Invoice"]
    customer_before = api.get("/customer/4").json()["Customer"]["Balance"]

    payment = api.post(
        "/payment",
        json={
            "CustomerRef": {"value": "4"},
            "TotalAmt": 100,
            "Line": [
                {"Amount": 100, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
            ],
        },
    ).json()["Payment"]
    after = api.get(f"/invoice/{invoice['Id']}").json()["Invoice"]
    too_much = api.post(
        "/payment",
        json={
            "CustomerRef": {"value": "4"},
            "TotalAmt": 500,
            "Line": [
                {"Amount": 500, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
            ],
        },
    )

    assert invoice["TotalAmt"] == 345.0 and invoice["Balance"] == 345.0
    assert invoice["DueDate"] == "2025-03-31"
    assert invoice["Line"][-1]["DetailType"] == "SubTotalLineDetail"
    assert invoice["CustomerRef"]["name"] == "Maya Patel"
    assert payment["UnappliedAmt"] == 0
    assert after["Balance"] == 245.0
    assert after["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]
    assert api.get("/customer/4").json()["Customer"]["Balance"] == customer_before - 100
    assert too_much.status_code == 400 and first_error(too_much)["code"] == "6000"


def test_delete_and_void_transactions(api):
    invoice = api.post(
        "/invoice",
        json={
            "CustomerRef": {"value": "2"},
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 200}],
        },
    ).json()["Invoice"]
    payment = api.post(
        "/payment",
        json={
            "CustomerRef": {"value": "2"},
            "TotalAmt": 200,
            "Line": [
                {"Amount": 200, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
            ],
        },
    ).json()["Payment"]
    paid_invoice = api.get(f"/invoice/{invoice['Id']}").json()["Invoice"]

    void_refused = api.post(
        "/invoice",
        params={"operation": "void"},
        json={"Id": invoice["Id"], "SyncToken": paid_invoice["SyncToken"]},
    )
    deleted = api.post(
        "/payment",
        params={"operation": "delete"},
        json={"Id": payment["Id"], "SyncToken": payment["SyncToken"]},
    )
    reopened = api.get(f"/invoice/{invoice['Id']}").json()["Invoice"]
    voided = api.post(
        "/invoice",
        params={"operation": "void"},
        json={"Id": invoice["Id"], "SyncToken": reopened["SyncToken"]},
    ).json()["Invoice"]
    customer_delete = api.post(
        "/customer", params={"operation": "delete"}, json={"Id": "1", "SyncToken": "0"}
    )

    assert paid_invoice["Balance"] == 0
    assert void_refused.status_code == 400 and first_error(void_refused)["code"] == "6000"
    assert deleted.json()["Payment"] == {"Id": payment["Id"], "status": "Deleted", "domain": "QBO"}
    assert api.get(f"/payment/{payment['Id']}").status_code == 400
    assert reopened["Balance"] == 200
    assert voided["TotalAmt"] == 0 and voided["Balance"] == 0
    assert voided["PrivateNote"] == "Voided"
    assert customer_delete.status_code == 400 and first_error(customer_delete)["code"] == "500"


def test_requestid_replays_the_first_response(api):
    first = api.post("/customer", params={"requestid": "req-1"}, json={"DisplayName": "Once Only"})
    again = api.post("/customer", params={"requestid": "req-1"}, json={"DisplayName": "Once Only"})
    other = api.post("/customer", params={"requestid": "req-2"}, json={"DisplayName": "Once Only"})

    assert first.status_code == 200
    assert again.status_code == 200 and again.json() == first.json()
    # A new requestid is a new request: the name is taken now.
    assert other.status_code == 400 and first_error(other)["code"] == "6240"
    assert len(rows(api, "SELECT * FROM Customer WHERE DisplayName = 'Once Only'", "Customer")) == 1


# --- authentication faults ----------------------------------------------------------------


def test_401_as_json_with_lowercase_fault(api, qbo_emulator, connected):
    qbo_emulator.emulator.configure(auth_fault_style="json")
    qbo_emulator.emulator.clock.advance(3601)

    response = api.get(f"/companyinfo/{connected['realmId']}")

    assert response.status_code == 401
    assert response.headers["intuit_tid"]
    error = response.json()["fault"]["error"][0]
    assert error["code"] == "3200"
    assert "AuthenticationFailed" in error["message"]
    assert error["detail"] == "Token expired"
    assert response.json()["fault"]["type"] == "AUTHENTICATION"


def test_401_as_xml_authentication_fault(api, qbo_emulator, connected):
    qbo_emulator.emulator.configure(auth_fault_style="xml")
    qbo_emulator.emulator.disconnect(connected["realmId"])

    response = api.get(f"/companyinfo/{connected['realmId']}")

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/xml")
    assert '<Fault type="AuthenticationFault">' in response.text
    assert '<Error code="3200">' in response.text
    assert connected["access_token"] not in response.text


def test_401_styles_alternate_by_default(qbo_emulator, connected):
    url = f"{qbo_emulator.base_url}/v3/company/{connected['realmId']}/customer/1"

    types = [httpx.get(url, verify=TLS).headers["content-type"].split(";")[0] for _ in range(4)]

    assert types == ["application/json", "application/xml"] * 2


def test_token_of_another_company_is_forbidden(api, qbo_emulator):
    other_realm = qbo_emulator.emulator.create_company()

    response = api.get(f"{qbo_emulator.base_url}/v3/company/{other_realm}/customer/1")

    assert response.status_code == 403
    assert response.json()["fault"]["error"][0]["code"] == "3100"


# --- throttling ---------------------------------------------------------------------------


def test_throttle_ten_per_second(api, qbo_emulator):
    qbo_emulator.emulator.configure(throttle_per_second=10)
    qbo_emulator.emulator.clock.freeze()

    statuses = [api.get("/customer/1").status_code for _ in range(11)]
    throttled = api.get("/customer/1")
    qbo_emulator.emulator.clock.advance(1)
    after_a_second = api.get("/customer/1")

    assert statuses == [200] * 10 + [429]
    assert throttled.status_code == 429
    error = first_error(throttled)
    assert error["code"] == "3001" and "ThrottleExceeded" in error["Message"]
    assert after_a_second.status_code == 200
    assert qbo_emulator.emulator.counters_snapshot()["api.throttled"] == 2


def test_throttle_per_minute(api, qbo_emulator):
    qbo_emulator.emulator.configure(throttle_per_minute=5)
    qbo_emulator.emulator.clock.freeze()

    statuses = []
    for _ in range(6):
        statuses.append(api.get("/customer/1").status_code)
        qbo_emulator.emulator.clock.advance(2)  # never 10 in one second, 6 in a minute
    qbo_emulator.emulator.clock.advance(50)

    assert statuses == [200] * 5 + [429]
    assert api.get("/customer/1").status_code == 200


def test_throttle_concurrent_requests(qbo_emulator, connected, api):
    qbo_emulator.emulator.configure(throttle_concurrent=2)
    qbo_emulator.emulator.inject_fault("read", "slow", delay=0.5, count=2)
    realm = connected["realmId"]
    results = []

    def slow_call():
        results.append(api.get("/customer/1").status_code)

    threads = [threading.Thread(target=slow_call) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while qbo_emulator.emulator.rate_limiter.in_flight(realm) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    third = api.get("/customer/1")
    for thread in threads:
        thread.join()

    assert third.status_code == 429
    assert results == [200, 200]


# --- injected faults ----------------------------------------------------------------------


def test_injected_500_then_recovery(api, qbo_emulator):
    qbo_emulator.emulator.inject_fault("query", status=500, count=2)

    statuses = [query(api, "SELECT * FROM Item").status_code for _ in range(3)]

    assert statuses == [500, 500, 200]


def test_injected_503_with_custom_body_on_every_endpoint(api, qbo_emulator, connected):
    qbo_emulator.emulator.inject_fault("*", status=503, body="Service Unavailable", count=None)

    responses = [
        api.get(f"/companyinfo/{connected['realmId']}"),
        httpx.get(f"{qbo_emulator.base_url}/.well-known/openid_configuration", verify=TLS),
    ]
    qbo_emulator.emulator.clear_faults()

    assert [r.status_code for r in responses] == [503, 503]
    assert responses[0].text == "Service Unavailable"
    assert all(r.headers["intuit_tid"] for r in responses)
    assert api.get("/customer/1").status_code == 200


def test_injected_slow_response_trips_a_client_timeout(api, qbo_emulator):
    qbo_emulator.emulator.inject_fault("read", "slow", delay=0.5)

    with pytest.raises(httpx.ReadTimeout):
        api.get("/customer/1", timeout=0.1)


def test_injected_connection_drop(api, qbo_emulator):
    qbo_emulator.emulator.inject_fault("report", "drop")

    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/reports/ProfitAndLoss")
    assert api.get("/reports/ProfitAndLoss").status_code == 200


def test_injected_fault_with_http_200(api, qbo_emulator):
    qbo_emulator.emulator.inject_fault("write", "fault_200")

    response = api.post("/customer", json={"DisplayName": "Never Stored"})

    assert response.status_code == 200
    assert response.json()["Fault"]["type"] == "ValidationFault"
    assert rows(api, "SELECT * FROM Customer WHERE DisplayName = 'Never Stored'", "Customer") == []


def test_request_log_records_minorversion_and_endpoint(api, qbo_emulator):
    api.get("/customer/1")

    record = qbo_emulator.emulator.recent_requests("read")[-1]
    assert record.query == {"minorversion": "75"}
    assert record.status == 200 and record.intuit_tid
