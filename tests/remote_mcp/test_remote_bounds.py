"""What a web process keeps per upstream connection is bounded: upstream sessions (a cache) by
how many, cached lists by how many and by their time (issue 17, goal 6)."""

from connectors.remote_mcp import lists
from connectors.remote_mcp.lists import ListCache
from connectors.remote_mcp.wire import Era, Sessions


def test_only_the_most_recently_used_upstream_sessions_are_kept():
    sessions = Sessions(size=2)
    sessions.put("a", Era("2025-06-18", "s-a"))
    sessions.put("b", Era("2025-06-18", "s-b"))
    assert sessions.get("a") == Era("2025-06-18", "s-a")  # a is now the most recently used
    sessions.put("c", Era("2025-06-18", "s-c"))
    assert len(sessions) == 2
    assert sessions.get("b") is None  # forgotten: negotiated again on its next call
    assert sessions.get("a") is not None and sessions.get("c") is not None


def test_the_process_keeps_at_most_ten_thousand_upstream_sessions():
    sessions = Sessions()
    for n in range(10_001):
        sessions.put(f"upstream-{n}", Era("2025-06-18"))
    assert len(sessions) == 10_000
    assert sessions.get("upstream-0") is None


def test_cached_lists_past_their_time_are_dropped_when_another_is_stored(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(lists.time, "monotonic", lambda: now[0])
    cache = ListCache(size=100)
    cache.put("c1", "tools/list", "", {"tools": ["x"] * 1000}, ttl=60)
    cache.put("c2", "tools/list", "", {"tools": []}, ttl=60)
    now[0] += 61
    assert cache.get("c1", "tools/list") is None
    cache.put("c3", "tools/list", "", {"tools": []}, ttl=60)
    assert len(cache) == 1
    assert cache.get("c3", "tools/list") == {"tools": []}


def test_the_list_cache_holds_at_most_its_size():
    cache = ListCache(size=2)
    for n in range(3):
        cache.put(f"c{n}", "tools/list", "", {"tools": []}, ttl=60)
    assert len(cache) == 2
    assert cache.get("c0", "tools/list") is None
