"""The Accounting API client against the live emulator: calls, paging, idempotency, errors."""

from __future__ import annotations

import socket

import httpx
import pytest

from connectors.quickbooks import client as qbo

pytestmark = pytest.mark.anyio

NO_PAUSE = qbo.RetryPolicy(backoff=0)


@pytest.fixture
def connected(qbo_emulator):
    return qbo_emulator.connect()


@pytest.fixture
def sent():
    """Requests as the client sent them (method, URL, headers)."""
    return []


@pytest.fixture
async def make_api(qbo_emulator, connected, sent):
    """Build a QuickBooksApi for the connected company; keyword arguments override defaults."""
    http_clients = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    def build(**overrides) -> qbo.QuickBooksApi:
        http = qbo.make_async_client(timeout=overrides.pop("timeout", None))
        http.event_hooks["request"].append(record)
        http_clients.append(http)
        options = {
            "api_base": qbo_emulator.api_base,
            "realm_id": connected["realmId"],
            "access_token": connected["access_token"],
            "retry": NO_PAUSE,
            "http": http,
            **overrides,
        }
        return qbo.QuickBooksApi(**options)

    yield build
    for http in http_clients:  # handed in, so closed here rather than by QuickBooksApi
        await http.aclose()


def add_customers(qbo_emulator, realm_id, names):
    emulator = qbo_emulator.emulator
    with emulator.lock:
        company = emulator.company(realm_id)
        for name in names:
            company.create("Customer", {"DisplayName": name}, emulator.clock.now())


# --- reads and headers --------------------------------------------------------------------


async def test_reads_send_minorversion_and_accept_json(make_api, sent):
    api = make_api()

    info = await api.company_info()
    customer = await api.get("customer", "1")

    assert info["CompanyName"] == "Sandbox Company_US_1"
    assert customer["DisplayName"] == "Harbor Street Bakery"
    for request in sent:
        assert request.url.params["minorversion"] == "75"
        assert request.headers["accept"] == "application/json"
        assert request.headers["authorization"].startswith("Bearer ")


async def test_query_returns_a_page(make_api):
    api = make_api()

    page = await api.query("SELECT * FROM Customer ORDERBY DisplayName", max_results=2)
    count = await api.count("Invoice", "Balance > '0'")
    empty = await api.query("SELECT * FROM Customer WHERE DisplayName = 'Nobody'")

    assert page.entity == "Customer"
    assert [c["DisplayName"] for c in page.items] == [
        "Harbor Street Bakery",
        "Juniper Design Studio",
    ]
    assert (page.start_position, page.max_results) == (1, 2)
    assert 0 < count < 10
    assert empty.items == [] and empty.total_count is None


async def test_query_all_follows_pages(make_api, qbo_emulator, connected, sent):
    add_customers(qbo_emulator, connected["realmId"], [f"Extra {n:03d}" for n in range(94)])
    api = make_api()

    everyone = await api.query_all("SELECT * FROM Customer", page_size=25)
    queries = [r.url.params["query"] for r in sent]
    limited = await api.query_all("SELECT * FROM Customer", page_size=25, limit=30)

    assert len(everyone) == 100
    assert len({c["Id"] for c in everyone}) == 100
    assert queries[0] == "SELECT * FROM Customer STARTPOSITION 1 MAXRESULTS 25"
    assert queries[3] == "SELECT * FROM Customer STARTPOSITION 76 MAXRESULTS 25"
    # 100 rows in pages of 25: the fifth request finds nothing and ends the walk.
    assert len(queries) == 5
    assert [c["Id"] for c in limited] == [c["Id"] for c in everyone[:30]]
    assert len(sent) == 7  # the limit stopped after two pages


async def test_query_pages_refuses_queries_that_page_themselves(make_api):
    api = make_api()

    with pytest.raises(ValueError):
        await api.query_all("SELECT * FROM Customer MAXRESULTS 5")


async def test_invalid_query_is_refused_before_sending(make_api, qbo_emulator, sent):
    api = make_api()

    with pytest.raises(qbo.InvalidQuery) as refused:
        await api.query("SELECT * FROM Customer WHERE A = '1' OR B = '2'")

    assert "OR is not supported" in refused.value.detail
    assert sent == []
    assert qbo_emulator.emulator.recent_requests("query") == []


async def test_query_refused_by_intuit_is_invalid_query_with_tid(make_api):
    api = make_api()

    with pytest.raises(qbo.InvalidQuery) as refused:  # valid grammar; the emulator has no Estimate
        await api.query("SELECT * FROM Estimate")

    assert refused.value.code == "4000"
    assert refused.value.status_code == 400
    assert refused.value.intuit_tid


async def test_report(make_api):
    api = make_api()

    body = await api.report("ProfitAndLoss", start_date="2000-01-01", accounting_method="Cash")

    assert body["Header"]["ReportName"] == "ProfitAndLoss"
    assert body["Header"]["ReportBasis"] == "Cash"


# --- writes -------------------------------------------------------------------------------


async def test_create_update_delete_void(make_api, sent):
    api = make_api()

    customer = await api.create("Customer", {"DisplayName": "Client Test Co"})
    updated = await api.sparse_update(
        "Customer", {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "Notes": "hello"}
    )
    invoice = await api.create(
        "Invoice",
        {
            "CustomerRef": {"value": customer["Id"]},
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 99}],
        },
    )
    voided = await api.void("Invoice", invoice["Id"], invoice["SyncToken"])
    deleted = await api.delete("Invoice", voided["Id"], voided["SyncToken"])

    assert updated["Notes"] == "hello" and updated["DisplayName"] == "Client Test Co"
    assert voided["TotalAmt"] == 0
    assert deleted["status"] == "Deleted"
    writes = [r for r in sent if r.method == "POST"]
    request_ids = [r.url.params["requestid"] for r in writes]
    assert len(request_ids) == 5 and len(set(request_ids)) == 5
    assert all(len(rid) <= 50 for rid in request_ids)
    assert [r.url.params.get("operation") for r in writes][-2:] == ["void", "delete"]


async def test_a_retried_write_whose_first_answer_was_lost_creates_one_object(
    make_api, qbo_emulator, sent
):
    api = make_api()
    qbo_emulator.emulator.inject_fault("write", "drop_after")

    customer = await api.create("Customer", {"DisplayName": "Exactly Once Ltd"})

    same = await api.query("SELECT * FROM Customer WHERE DisplayName = 'Exactly Once Ltd'")
    assert [c["Id"] for c in same.items] == [customer["Id"]]
    posts = [r for r in sent if r.method == "POST"]
    assert len(posts) == 2
    assert posts[0].url.params["requestid"] == posts[1].url.params["requestid"]
    assert qbo_emulator.emulator.counters_snapshot()["api.requestid_replayed"] == 1


async def test_same_request_id_returns_the_same_object(make_api):
    api = make_api()

    first = await api.create("Vendor", {"DisplayName": "Replay Supply"}, request_id="vendor-1")
    second = await api.create("Vendor", {"DisplayName": "Replay Supply"}, request_id="vendor-1")

    assert first == second


# --- error mapping ------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["json", "xml"])
async def test_expired_token_is_unauthorized_in_either_style(make_api, qbo_emulator, style):
    qbo_emulator.emulator.configure(auth_fault_style=style)
    qbo_emulator.emulator.clock.advance(3601)
    api = make_api()

    with pytest.raises(qbo.Unauthorized) as refused:
        await api.company_info()

    assert refused.value.status_code == 401
    assert refused.value.code == "3200"
    assert "AuthenticationFailed" in refused.value.message
    assert refused.value.intuit_tid


async def test_unauthorized_then_refresh_once_and_retry(
    make_api, qbo_emulator, qbo_oauth, connected
):
    qbo_emulator.emulator.clock.advance(3601)

    with pytest.raises(qbo.Unauthorized):
        await make_api().get("Customer", "2")
    tokens = qbo_oauth.refresh(connected["refresh_token"])
    customer = await make_api(access_token=tokens.access_token).get("Customer", "2")

    assert customer["Id"] == "2"


async def test_token_of_another_company_is_forbidden(make_api, qbo_emulator):
    other_realm = qbo_emulator.emulator.create_company()

    with pytest.raises(qbo.Forbidden) as refused:
        await make_api(realm_id=other_realm).company_info()

    assert refused.value.status_code == 403


async def test_missing_object_is_not_found(make_api):
    with pytest.raises(qbo.NotFound) as refused:
        await make_api().get("Invoice", "9999")

    assert refused.value.code == "610"


async def test_stale_sync_token_is_stale_object(make_api):
    api = make_api()
    customer = await api.get("Customer", "3")
    await api.sparse_update(
        "Customer", {"Id": "3", "SyncToken": customer["SyncToken"], "Notes": "a"}
    )

    with pytest.raises(qbo.StaleObject) as refused:
        await api.sparse_update(
            "Customer", {"Id": "3", "SyncToken": customer["SyncToken"], "Notes": "b"}
        )

    assert refused.value.code == "5010"


@pytest.mark.parametrize(
    ("body", "code", "element"),
    [
        ({"Notes": "nameless"}, "2020", "DisplayName"),
        ({"DisplayName": "Harbor Street Bakery"}, "6240", ""),
        ({"DisplayName": "X", "Colour": "red"}, "2010", "Colour"),
    ],
)
async def test_refused_writes_are_validation_errors(make_api, body, code, element):
    with pytest.raises(qbo.ValidationError) as refused:
        await make_api().create("Customer", body)

    assert refused.value.code == code
    assert refused.value.element == element
    assert refused.value.detail
    assert code in str(refused.value)


async def test_fault_with_http_200_is_a_validation_error(make_api, qbo_emulator):
    qbo_emulator.emulator.inject_fault("write", "fault_200")

    with pytest.raises(qbo.ValidationError) as refused:
        await make_api().create("Customer", {"DisplayName": "Two Hundred"})

    assert refused.value.status_code == 200
    assert refused.value.code == "6000"


async def test_throttled_with_a_sixty_second_wait(make_api, qbo_emulator):
    qbo_emulator.emulator.configure(throttle_per_second=1)
    qbo_emulator.emulator.clock.freeze()
    api = make_api()
    await api.get("Customer", "1")

    with pytest.raises(qbo.Throttled) as refused:
        await api.get("Customer", "1")

    assert refused.value.retry_after == 60
    assert refused.value.status_code == 429
    assert qbo_emulator.emulator.counters_snapshot()["api.throttled"] == 1  # not retried


async def test_5xx_is_retried_then_provider_unavailable(make_api, qbo_emulator):
    qbo_emulator.emulator.inject_fault("read", status=503, count=2)
    recovered = await make_api().get("Customer", "1")
    qbo_emulator.emulator.inject_fault("read", status=500, count=3)

    with pytest.raises(qbo.ProviderUnavailable) as failure:
        await make_api().get("Customer", "1")

    assert recovered["Id"] == "1"
    assert failure.value.status_code == 500
    assert failure.value.intuit_tid
    assert qbo_emulator.emulator.counters_snapshot()["faults.injected"] == 5


async def test_dropped_connection_on_a_read_is_retried(make_api, qbo_emulator):
    qbo_emulator.emulator.inject_fault("companyinfo", "drop")

    info = await make_api().company_info()

    assert info["Id"] == "1"
    assert qbo_emulator.emulator.counters_snapshot()["faults.injected.drop"] == 1


async def test_timeouts_are_retried_then_provider_unavailable(make_api, qbo_emulator):
    qbo_emulator.emulator.inject_fault("read", "slow", delay=0.3, count=1)
    recovered = await make_api(timeout=httpx.Timeout(0.1)).get("Customer", "1")
    qbo_emulator.emulator.inject_fault("read", "slow", delay=0.3, count=None)

    with pytest.raises(qbo.ProviderUnavailable, match="timed out"):
        await make_api(
            timeout=httpx.Timeout(0.1), retry=qbo.RetryPolicy(max_attempts=2, backoff=0)
        ).get("Customer", "1")
    qbo_emulator.emulator.clear_faults()

    assert recovered["Id"] == "1"


async def test_network_error_is_provider_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with qbo.QuickBooksApi(
        api_base=f"http://127.0.0.1:{port}/v3", realm_id="1", access_token="t", retry=NO_PAUSE
    ) as api:
        with pytest.raises(qbo.ProviderUnavailable, match="network error"):
            await api.company_info()


async def test_unknown_entity_names_are_refused_locally(make_api):
    with pytest.raises(ValueError):
        await make_api().get("Spaceship", "1")


# --- throttle helper in use ---------------------------------------------------------------


async def test_realm_throttle_keeps_bursts_under_intuit_limits(make_api, qbo_emulator):
    qbo_emulator.emulator.configure(throttle_per_second=4)
    # The throttle counts a request when it takes its slot, the emulator when it arrives: a
    # margin wider than the default 50 ms, so that a loaded CI machine delaying the first of a
    # burst cannot make it count in the emulator's next window (seen once in .ci/run).
    throttle = qbo.RealmThrottle(per_second=4, per_minute=500, margin=0.25)
    api = make_api(throttle=throttle)

    for _ in range(6):  # 4 at once, then the throttle waits for the window to slide
        await api.get("Customer", "1")

    assert qbo_emulator.emulator.counters_snapshot().get("api.throttled", 0) == 0
    unthrottled = make_api()
    with pytest.raises(qbo.Throttled):
        for _ in range(6):
            await unthrottled.get("Customer", "1")
