"""The Prometheus endpoint, scraped over HTTP from the live platform after real tool calls and
parsed with prometheus_client's own text parser."""

import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from config.celery import app as celery_app
from events.models import Event
from tenants.services import connector_create, connector_update
from tests.support.flow import OAuthClient, mcp_post
from tests.support.oauth import Browser
from upstream import tasks
from upstream.models import UpstreamConnection
from upstream.refresh import upstream_connection_refresh

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "scrape-" + uuid.uuid4().hex
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def scrape(live_url, token=TOKEN) -> dict[tuple, float]:
    """Every sample of a scrape: {(name, ((label, value), ...)): value}."""
    response = httpx.get(
        f"{live_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


def samples(text: str) -> dict[tuple, float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def figure(scraped, name, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def _call(url, token, tool, arguments) -> dict:
    payload = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    response = mcp_post(url, token, payload)
    assert response.status_code == 200, response.text
    return response.json()["result"]


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def test_metrics_are_off_unless_configured(live_url, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOW_IPS = []
    response = httpx.get(f"{live_url}/metrics", headers={"Authorization": "Bearer x"}, timeout=30)
    assert response.status_code == 404
    assert "mcp_" not in response.text


def test_a_scraper_without_the_token_is_refused(live_url, metrics_on, settings):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = httpx.get(f"{live_url}/metrics", headers=headers, timeout=30)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == 'Bearer realm="metrics"'
        assert "mcp_" not in response.text
    # An internal network instead of the token: the live server's peer is 127.0.0.1.
    settings.METRICS_ALLOW_IPS = ["10.0.0.0/8"]
    assert httpx.get(f"{live_url}/metrics", timeout=30).status_code == 401
    settings.METRICS_ALLOW_IPS = ["127.0.0.0/8"]
    response = httpx.get(f"{live_url}/metrics", timeout=30)
    assert response.status_code == 200 and "mcp_tool_calls" in response.text
    # Prometheus addresses each replica by its IP: no ALLOWED_HOSTS refusal for that Host.
    response = httpx.get(f"{live_url}/metrics", headers={"Host": "172.30.70.140:8000"}, timeout=30)
    assert response.status_code == 200 and "mcp_upstream_connections" in response.text


def test_tool_calls_errors_and_latency_per_connector(live_url, acme, metrics_on):
    connector = acme["connector"]
    client = OAuthClient.register(live_url)
    token = client.tokens(Browser("bob", "bob-pass-123"), connector.url)["access_token"]
    connector_update(connector=connector, tool_policy={"admins_only": ["whoami"]})
    before = scrape(live_url)

    assert _call(connector.url, token, "echo", {"text": "a"})["isError"] is False
    assert _call(connector.url, token, "echo", {"text": "b"})["isError"] is False
    assert _call(connector.url, token, "fail", {"message": "boom"})["isError"] is True
    assert _call(connector.url, token, "whoami", {})["isError"] is True  # admins only
    mcp_post(connector.url, token)  # tools/list: not a tool call
    time.sleep(0.3)  # a call is counted just after its answer went out
    after = scrape(live_url)

    def delta(name, **labels):
        return figure(after, name, **labels) - figure(before, name, **labels)

    where = {"tenant": "acme", "connector": "echo"}
    assert delta("mcp_tool_calls_total", outcome="ok", **where) == 2
    assert delta("mcp_tool_calls_total", outcome="error", **where) == 1
    assert delta("mcp_tool_calls_total", outcome="denied", **where) == 1
    assert delta("mcp_tool_call_duration_seconds_count", **where) == 4
    assert delta("mcp_tool_call_duration_seconds_bucket", le="+Inf", **where) == 4
    assert 0 < delta("mcp_tool_call_duration_seconds_sum", **where) < 30
    # Another tenant's connector of the same slug is a series of its own.
    assert delta("mcp_tool_calls_total", outcome="ok", tenant="globex", connector="echo") == 0


def test_calls_are_not_counted_while_metrics_are_off(live_url, acme, settings):
    """Off, no series is kept per tenant and connector: it would only hold memory, growing
    with every connector a process serves (issue 17, goal 6)."""
    connector = acme["connector"]
    client = OAuthClient.register(live_url)
    token = client.tokens(Browser("bob", "bob-pass-123"), connector.url)["access_token"]
    settings.METRICS_TOKEN = TOKEN
    before = scrape(live_url)
    settings.METRICS_TOKEN = ""
    assert _call(connector.url, token, "echo", {"text": "a"})["isError"] is False
    time.sleep(0.3)  # a call is counted just after its answer went out
    settings.METRICS_TOKEN = TOKEN
    after = scrape(live_url)
    where = {"tenant": "acme", "connector": "echo"}
    for name, labels in (
        ("mcp_tool_calls_total", {"outcome": "ok", **where}),
        ("mcp_tool_call_duration_seconds_count", where),
    ):
        assert figure(after, name, **labels) == figure(before, name, **labels)


def test_refreshes_connections_sweep_lag_and_queue_depth(
    live_url, acme, metrics_on, quickbooks_on_emulator
):
    emulator = quickbooks_on_emulator
    connections = []
    for number in range(3):
        connector = connector_create(
            tenant=acme["tenant"], kind="quickbooks", slug=f"books-{number}", mode="shared"
        )
        connections.append(emulator.store_connection(connector=connector)[0])
    UpstreamConnection.objects.filter(pk=connections[2].pk).update(status="needs_reauth")
    swept = Event.objects.create(kind="upstream.sweep")
    Event.objects.filter(pk=swept.pk).update(created=timezone.now() - timedelta(seconds=120))
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    previous_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    before = scrape(live_url)
    try:
        for _ in range(3):
            tasks.upstream_sweep.delay()
        upstream_connection_refresh(connection_id=connections[0].pk, force=True)
        after = scrape(live_url)
    finally:
        celery_app.conf.task_default_queue = previous_queue
        with celery_app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)

    refreshed = figure(after, "mcp_upstream_refreshes_total", provider="quickbooks", outcome="ok")
    assert (
        refreshed
        - figure(before, "mcp_upstream_refreshes_total", provider="quickbooks", outcome="ok")
        == 1
    )
    assert figure(after, "mcp_upstream_connections", status="active") == 2
    assert figure(after, "mcp_upstream_connections", status="needs_reauth") == 1
    assert figure(after, "mcp_upstream_connections", status="revoked") == 0
    assert 120 <= figure(after, "mcp_upstream_sweep_lag_seconds") < 180
    assert figure(before, "mcp_celery_queue_depth", queue=queue) == 0
    assert figure(after, "mcp_celery_queue_depth", queue=queue) == 3


def test_web_processes_sharing_the_multiprocess_folder_add_up(
    live_url, metrics_on, tmp_path, monkeypatch
):
    """uvicorn's workers are processes: with PROMETHEUS_MULTIPROC_DIR each writes its counts
    there, and a scrape of any of them reads them all."""
    script = (
        "import sys; from events.metrics import metrics_tool_call\n"
        "for _ in range(int(sys.argv[1])):\n"
        "    metrics_tool_call(tenant='t', connector='c', outcome='ok', seconds=0.02)\n"
    )
    env = {
        **os.environ,
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    for count in (2, 3):
        subprocess.run(
            [sys.executable, "-c", script, str(count)], env=env, cwd=ROOT, check=True, timeout=60
        )
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    scraped = scrape(live_url)
    labels = {"tenant": "t", "connector": "c"}
    assert figure(scraped, "mcp_tool_calls_total", outcome="ok", **labels) == 5
    assert figure(scraped, "mcp_tool_call_duration_seconds_bucket", le="0.025", **labels) == 5
    assert figure(scraped, "mcp_tool_call_duration_seconds_bucket", le="0.01", **labels) == 0
    # The figures no process holds are still read from the database at scrape time.
    assert ("mcp_upstream_connections", (("status", "active"),)) in scraped


def test_a_worker_serves_the_refreshes_it_did_on_its_own_port(acme, quickbooks_on_emulator):
    from tests.support.live import free_port
    from tests.support.workers import celery_workers

    emulator = quickbooks_on_emulator
    connector = connector_create(tenant=acme["tenant"], kind="quickbooks", mode="shared")
    connection, _ = emulator.store_connection(connector=connector)
    UpstreamConnection.objects.filter(pk=connection.pk).update(
        access_expires_at=timezone.now() + timedelta(seconds=10)  # within the refresh margin
    )
    port = free_port()
    env = {
        "QUICKBOOKS_ENVIRONMENT": emulator.base_url,
        "QUICKBOOKS_CLIENT_ID": emulator.client_id,
        "QUICKBOOKS_CLIENT_SECRET": emulator.client_secret,
        "METRICS_TOKEN": TOKEN,
        "METRICS_WORKER_PORT": str(port),
        "METRICS_WORKER_ADDRESS": "127.0.0.1",
    }
    url = f"http://127.0.0.1:{port}/metrics"
    with celery_workers(1, env):
        assert httpx.get(url, timeout=30).status_code == 401
        tasks.upstream_refresh.delay(connection.pk)
        deadline = time.monotonic() + 60
        while True:
            response = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
            assert response.status_code == 200
            scraped = samples(response.text)
            done = figure(
                scraped, "mcp_upstream_refreshes_total", provider="quickbooks", outcome="ok"
            )
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert done == 1
    connection.refresh_from_db()
    assert connection.status == "active" and connection.last_refresh_at is not None


DASHBOARD = os.path.join(ROOT, "docs", "grafana-dashboard.json")


def _dashboard_queries() -> list[tuple[str, str]]:
    """(query, legend) of every panel target and template variable of the dashboard."""
    with open(DASHBOARD) as handle:
        dashboard = json.load(handle)  # valid JSON, or this fails
    queries = [
        (target["expr"], target.get("legendFormat", ""))
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    queries += [(v["query"]["query"], "") for v in dashboard["templating"]["list"]]
    return queries


def test_the_grafana_dashboard_queries_only_what_a_scrape_shows(
    live_url, acme, metrics_on, quickbooks_on_emulator
):
    connector = acme["connector"]
    client = OAuthClient.register(live_url)
    token = client.tokens(Browser("bob", "bob-pass-123"), connector.url)["access_token"]
    _call(connector.url, token, "echo", {"text": "a"})
    books = connector_create(tenant=acme["tenant"], kind="quickbooks", mode="shared")
    connection, _ = quickbooks_on_emulator.store_connection(connector=books)
    upstream_connection_refresh(connection_id=connection.pk, force=True)
    Event.objects.create(kind="upstream.sweep")
    time.sleep(0.3)
    scraped = scrape(live_url)
    labels_of: dict[str, set[str]] = {}
    for name, labels in scraped:
        labels_of.setdefault(name, set()).update(label for label, _ in labels)

    queries = _dashboard_queries()
    assert len(queries) >= 8
    queried = set()
    for query, legend in queries:
        metrics = set(re.findall(r"\b(mcp_[a-z0-9_]+)", query))
        assert metrics, query
        missing = metrics - set(labels_of)
        assert not missing, f"{query} asks for {missing}, which a scrape does not show"
        queried |= metrics
        available = set().union(*(labels_of[m] for m in metrics))
        used = set(re.findall(r"by \(([^)]*)\)", query))
        used = {label.strip() for group in used for label in group.split(",")}
        used |= set(re.findall(r"(\w+)\s*=~?\s*\"", query))
        used |= set(re.findall(r"\{\{(\w+)\}\}", legend))
        used |= set(re.findall(r"label_values\([^,]+,\s*(\w+)\)", query))
        assert used <= available, f"{query} uses labels {used - available} its metrics lack"
    # Every metric the platform exports has a panel.
    assert {
        "mcp_tool_calls_total",
        "mcp_tool_call_duration_seconds_bucket",
        "mcp_upstream_refreshes_total",
        "mcp_upstream_connections",
        "mcp_upstream_sweep_lag_seconds",
        "mcp_celery_queue_depth",
    } <= queried
