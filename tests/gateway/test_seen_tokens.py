"""The gateway remembers which tokens it has served (only a client's first call is traced in
full) for the most recent ones only: the set cannot grow with every token a process ever saw."""

from gateway.asgi import Gateway, _Seen


def test_the_tokens_a_gateway_remembers_are_bounded():
    seen = _Seen(size=3)
    assert [seen.first_time(token) for token in (1, 2, 3, 1)] == [True, True, True, False]
    assert seen.first_time(4) is True
    assert len(seen) == 3
    assert seen.first_time(1) is True  # the first added, forgotten for 4
    assert seen.first_time(4) is False


def test_a_gateway_remembers_at_most_ten_thousand_tokens():
    seen = Gateway()._seen
    for token in range(10_001):
        seen.first_time(token)
    assert len(seen) == 10_000
    assert seen.first_time(0) is True
