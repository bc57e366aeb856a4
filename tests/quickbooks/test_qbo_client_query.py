"""The shared query grammar as the client uses it: validate before sending, refuse non-reads."""

from __future__ import annotations

import pytest

from connectors.quickbooks.client import InvalidQuery, ValidationError, validate_query
from connectors.quickbooks.query import Condition, OrderBy, parse_query, quote_literal


def test_validate_query_parses_a_full_query():
    query = validate_query(
        "select * from invoice where CustomerRef = '12' and Balance > '0' "
        "and DocNumber IN ('1001', '1002') and MetaData.LastUpdatedTime >= '2025-01-01' "
        "ORDERBY DueDate DESC STARTPOSITION 11 MAXRESULTS 10"
    )

    assert query.entity == "Invoice"
    assert not query.count
    assert query.conditions == (
        Condition("CustomerRef", "=", "12"),
        Condition("Balance", ">", "0"),
        Condition("DocNumber", "IN", ("1001", "1002")),
        Condition("MetaData.LastUpdatedTime", ">=", "2025-01-01"),
    )
    assert query.order_by == (OrderBy("DueDate", descending=True),)
    assert (query.start_position, query.max_results) == (11, 10)


@pytest.mark.parametrize(
    ("sql", "entity"),
    [
        ("SELECT count(*) FROM Customer", "Customer"),
        ("SELECT COUNT(*) FROM Bill WHERE Balance > '0'", "Bill"),
        ("SELECT * FROM CompanyInfo", "CompanyInfo"),
        ("SELECT * FROM Estimate MAXRESULTS 1000", "Estimate"),  # Intuit has it; the emulator not
        ("SELECT * FROM Customer WHERE Active = false", "Customer"),
        ("SELECT * FROM Item WHERE UnitPrice <= 10.5", "Item"),
        ("SELECT * FROM Customer MAXRESULTS 5 STARTPOSITION 3", "Customer"),
    ],
)
def test_accepted_queries(sql, entity):
    assert validate_query(sql).entity == entity


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT * FROM Customer WHERE A = '1' OR B = '2'", "OR is not supported"),
        ("SELECT * FROM Customer JOIN Invoice", "JOIN is not supported"),
        ("SELECT * FROM Customer, Invoice", "JOIN is not supported"),
        ("SELECT * FROM Invoice GROUP BY CustomerRef", "GROUP BY is not supported"),
        ("SELECT Id, DisplayName FROM Customer", "projections are not supported"),
        ("SELECT count(Id) FROM Customer", 'was expecting "*"'),
        ("SELECT * FROM Gadget", "Invalid entity name: Gadget"),
        ("SELECT * FROM Customer MAXRESULTS 1001", "MAXRESULTS must be between 1 and 1000"),
        ("SELECT * FROM Customer MAXRESULTS 0", "MAXRESULTS must be between 1 and 1000"),
        ("SELECT * FROM Customer STARTPOSITION 0", "STARTPOSITION must be 1 or more"),
        ("SELECT * FROM Customer STARTPOSITION 1 STARTPOSITION 2", "given twice"),
        ("UPDATE Customer SET Active = false", "only SELECT queries are supported"),
        ("DELETE FROM Customer", "only SELECT queries are supported"),
        ("SELECT * FROM Customer WHERE Balance <> '0'", 'operator "<>"'),
        ("SELECT * FROM Customer WHERE NOT Active = true", "NOT is not supported"),
        ("SELECT * FROM Customer ORDER BY DisplayName", "use ORDERBY"),
        ("SELECT * FROM Customer LIMIT 5", "use MAXRESULTS"),
        ("SELECT * FROM Customer WHERE DisplayName = 'open", "unterminated string"),
        ("SELECT * FROM Customer WHERE DisplayName LIKE 5", "quoted pattern"),
        ("SELECT * FROM Customer WHERE DisplayName =", "was expecting a value"),
        ("SELECT * FROM Customer;", 'Encountered ";"'),
        ("", "SELECT"),
    ],
)
def test_refused_queries_say_why(sql, reason):
    with pytest.raises(InvalidQuery) as refused:
        validate_query(sql)

    assert isinstance(refused.value, ValidationError)
    assert refused.value.code == "4000"
    assert refused.value.detail.startswith("QueryParserError")
    assert reason in refused.value.detail


def test_keywords_and_entities_are_case_insensitive():
    query = validate_query("sElEcT * FrOm vendor WhErE Active = TRUE orderby DisplayName asc")

    assert query.entity == "Vendor"
    assert query.conditions == (Condition("Active", "=", True),)


def test_rendering_round_trips_with_escaped_quotes():
    query = parse_query(
        f"SELECT * FROM Customer WHERE DisplayName = {quote_literal(chr(39).join(['Amy', 's']))} "
        "AND Id IN ('1', '2') ORDERBY DisplayName DESC, Id"
    )

    assert query.conditions[0].value == "Amy's"
    assert parse_query(query.to_sql()) == query
    paged = query.with_page(21, 10)
    assert parse_query(paged.to_sql()) == paged


def test_emulator_can_restrict_the_entities():
    with pytest.raises(Exception, match="Invalid entity name: Estimate"):
        parse_query("SELECT * FROM Estimate", entities=["Customer", "Invoice"])
