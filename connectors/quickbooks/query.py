"""The QuickBooks Online query language, parsed into a small AST.

One grammar, two users: the client validates queries before sending them (and refuses anything
that is not a read), and the emulator evaluates the same AST against its stored objects, so both
sides agree on what Intuit accepts:

    SELECT * | SELECT count(*) FROM Entity
        [WHERE condition [AND condition]...]
        [ORDERBY field [ASC|DESC] [, field [ASC|DESC]]...]
        [STARTPOSITION n] [MAXRESULTS n]

    condition := field (= | < | > | <= | >=) literal
               | field IN (literal [, literal]...)
               | field LIKE 'pattern'          (only % is a wildcard)
    literal   := 'string' (quote escaped as \\') | number | true | false
    field     := Name or Dotted.Name (for example MetaData.LastUpdatedTime)

Keywords are case-insensitive. OR, NOT, JOIN, GROUP BY, projections other than * or count(*),
and MAXRESULTS above 1000 are refused, as Intuit does.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_RESULTS_LIMIT = 1000
DEFAULT_MAX_RESULTS = 100

# Entities Intuit lets you query (the client validates against these; the emulator passes the
# smaller set it stores). Keys are lower case so lookups are case-insensitive.
QUERYABLE_ENTITIES: dict[str, str] = {
    name.lower(): name
    for name in (
        "Account",
        "Attachable",
        "Bill",
        "BillPayment",
        "Budget",
        "Class",
        "CompanyCurrency",
        "CompanyInfo",
        "CreditMemo",
        "CreditCardPayment",
        "Customer",
        "CustomerType",
        "Department",
        "Deposit",
        "Employee",
        "Estimate",
        "Invoice",
        "Item",
        "JournalCode",
        "JournalEntry",
        "Payment",
        "PaymentMethod",
        "Preferences",
        "Purchase",
        "PurchaseOrder",
        "RefundReceipt",
        "SalesReceipt",
        "TaxAgency",
        "TaxCode",
        "TaxRate",
        "Term",
        "TimeActivity",
        "Transfer",
        "Vendor",
        "VendorCredit",
    )
}

COMPARISON_OPERATORS = ("=", "<", ">", "<=", ">=")

LiteralValue = str | int | float | bool


class QueryError(ValueError):
    """A query Intuit would refuse; `detail` reads like Intuit's QueryParserError detail."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Condition:
    """One `field operator value` term of a WHERE clause; `value` is a tuple for IN."""

    field: str
    operator: str  # one of COMPARISON_OPERATORS, "IN" or "LIKE"
    value: LiteralValue | tuple[LiteralValue, ...]


@dataclass(frozen=True)
class OrderBy:
    field: str
    descending: bool = False


@dataclass(frozen=True)
class Query:
    """A parsed query. `entity` is the canonical entity name (e.g. "Customer")."""

    entity: str
    count: bool = False
    conditions: tuple[Condition, ...] = ()
    order_by: tuple[OrderBy, ...] = ()
    start_position: int | None = None
    max_results: int | None = None

    def with_page(self, start_position: int, max_results: int) -> Query:
        """The same query restricted to one page."""
        return dataclasses.replace(self, start_position=start_position, max_results=max_results)

    def to_sql(self) -> str:
        """Render back to query text that `parse_query` accepts."""
        parts = [f"SELECT {'count(*)' if self.count else '*'} FROM {self.entity}"]
        if self.conditions:
            parts.append("WHERE " + " AND ".join(_render_condition(c) for c in self.conditions))
        if self.order_by:
            rendered = ", ".join(
                f"{o.field} DESC" if o.descending else o.field for o in self.order_by
            )
            parts.append(f"ORDERBY {rendered}")
        if self.start_position is not None:
            parts.append(f"STARTPOSITION {self.start_position}")
        if self.max_results is not None:
            parts.append(f"MAXRESULTS {self.max_results}")
        return " ".join(parts)


def parse_query(text: str, *, entities: Iterable[str] | None = None) -> Query:
    """Parse query text into a `Query`, or raise `QueryError` where Intuit would refuse it.

    `entities` limits the accepted entity names (canonical spelling); default: every entity
    Intuit lets you query.
    """
    if entities is None:
        known = QUERYABLE_ENTITIES
    else:
        known = {name.lower(): name for name in entities}
    return _Parser(_tokenize(text), known).parse()


def canonical_entity_name(name: str) -> str:
    """'customer' -> 'Customer'; raises ValueError for names Intuit does not know."""
    try:
        return QUERYABLE_ENTITIES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown QuickBooks entity: {name!r}") from None


def quote_literal(value: str) -> str:
    """Quote a string for use in a query (escapes the single quote as Intuit expects)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _render_literal(value: LiteralValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return quote_literal(value)


def _render_condition(condition: Condition) -> str:
    if condition.operator == "IN":
        values = ", ".join(_render_literal(v) for v in condition.value)  # type: ignore[union-attr]
        return f"{condition.field} IN ({values})"
    return f"{condition.field} {condition.operator} {_render_literal(condition.value)}"  # type: ignore[arg-type]


# --- tokenizer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "string", "number", "op", "punct", "end"
    text: str
    position: int  # 1-based column, as in Intuit's messages
    value: LiteralValue | None = None

    @property
    def keyword(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    def describe(self) -> str:
        return "end of query" if self.kind == "end" else f'"{self.text}"'


_TOKEN_PATTERN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),*])
    """,
    re.VERBOSE,
)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN_PATTERN.match(text, position)
        if match is None:
            if text[position] == "'":
                raise QueryError(f"QueryParserError: unterminated string at column {position + 1}")
            raise QueryError(
                f'QueryParserError: Encountered "{text[position]}" at column {position + 1}'
            )
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "string":
            tokens.append(_Token(kind, raw, position + 1, re.sub(r"\\(.)", r"\1", raw[1:-1])))
        elif kind == "number":
            number: int | float = float(raw) if "." in raw else int(raw)
            tokens.append(_Token(kind, raw, position + 1, number))
        elif kind != "space":
            tokens.append(_Token(kind, raw, position + 1))
        position = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


# --- parser -----------------------------------------------------------------------------------

_CLAUSE_KEYWORDS = {"WHERE", "ORDERBY", "STARTPOSITION", "MAXRESULTS"}
_REFUSED_KEYWORDS = {
    "OR": "OR is not supported; combine conditions with AND only",
    "NOT": "NOT is not supported",
    "JOIN": "JOIN is not supported",
    "INNER": "JOIN is not supported",
    "LEFT": "JOIN is not supported",
    "GROUP": "GROUP BY is not supported",
    "HAVING": "HAVING is not supported",
    "UNION": "UNION is not supported",
    "ORDER": "use ORDERBY (one word)",
    "LIMIT": "use MAXRESULTS instead of LIMIT",
    "OFFSET": "use STARTPOSITION instead of OFFSET",
}


class _Parser:
    def __init__(self, tokens: list[_Token], entities: dict[str, str]):
        self.tokens = tokens
        self.index = 0
        self.entities = entities

    # helpers

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def fail(self, expected: str, token: _Token | None = None) -> QueryError:
        token = token or self.current
        reason = _REFUSED_KEYWORDS.get(token.keyword)
        message = f"QueryParserError: Encountered {token.describe()} at column {token.position}"
        message += f"; {reason}" if reason else f"; was expecting {expected}"
        return QueryError(message)

    def expect_keyword(self, keyword: str) -> _Token:
        if self.current.keyword != keyword:
            raise self.fail(keyword)
        return self.advance()

    def expect_punct(self, text: str) -> _Token:
        if self.current.kind != "punct" or self.current.text != text:
            raise self.fail(f'"{text}"')
        return self.advance()

    def expect_int(self, clause: str) -> int:
        token = self.current
        if token.kind != "number" or not isinstance(token.value, int):
            raise self.fail(f"an integer after {clause}")
        self.advance()
        return token.value

    # grammar

    def parse(self) -> Query:
        if self.current.keyword != "SELECT":
            if self.current.kind == "word":
                raise QueryError(
                    f"QueryParserError: only SELECT queries are supported (read-only), "
                    f"found {self.current.describe()}"
                )
            raise self.fail("SELECT")
        self.advance()
        count = self.parse_projection()
        self.expect_keyword("FROM")
        entity = self.parse_entity()
        conditions: tuple[Condition, ...] = ()
        order_by: tuple[OrderBy, ...] = ()
        start_position: int | None = None
        max_results: int | None = None
        if self.current.keyword == "WHERE":
            self.advance()
            conditions = self.parse_conditions()
        if self.current.keyword == "ORDERBY":
            self.advance()
            order_by = self.parse_order_by()
        # Intuit accepts the two paging clauses in either order, each once.
        while self.current.keyword in ("STARTPOSITION", "MAXRESULTS"):
            keyword = self.advance().keyword
            value = self.expect_int(keyword)
            if keyword == "STARTPOSITION":
                if start_position is not None:
                    raise QueryError("QueryParserError: STARTPOSITION given twice")
                if value < 1:
                    raise QueryError("QueryParserError: STARTPOSITION must be 1 or more")
                start_position = value
            else:
                if max_results is not None:
                    raise QueryError("QueryParserError: MAXRESULTS given twice")
                if not 1 <= value <= MAX_RESULTS_LIMIT:
                    raise QueryError(
                        f"QueryParserError: MAXRESULTS must be between 1 and {MAX_RESULTS_LIMIT}"
                    )
                max_results = value
        if self.current.kind != "end":
            raise self.fail("end of query")
        return Query(entity, count, conditions, order_by, start_position, max_results)

    def parse_projection(self) -> bool:
        token = self.current
        if token.kind == "punct" and token.text == "*":
            self.advance()
            return False
        if token.keyword == "COUNT":
            self.advance()
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            return True
        raise QueryError(
            f"QueryParserError: Encountered {token.describe()} at column {token.position}; "
            "projections are not supported, use SELECT * or SELECT count(*)"
        )

    def parse_entity(self) -> str:
        token = self.current
        if token.kind != "word" or token.keyword in _CLAUSE_KEYWORDS or "." in token.text:
            raise self.fail("an entity name")
        self.advance()
        try:
            entity = self.entities[token.text.lower()]
        except KeyError:
            raise QueryError(f"QueryParserError: Invalid entity name: {token.text}") from None
        if self.current.kind == "word" and self.current.keyword not in _CLAUSE_KEYWORDS:
            raise self.fail("WHERE, ORDERBY, STARTPOSITION, MAXRESULTS or end of query")
        if self.current.kind == "punct" and self.current.text == ",":
            raise QueryError("QueryParserError: JOIN is not supported (one entity per query)")
        return entity

    def parse_conditions(self) -> tuple[Condition, ...]:
        conditions = [self.parse_condition()]
        while self.current.keyword == "AND":
            self.advance()
            conditions.append(self.parse_condition())
        return tuple(conditions)

    def parse_condition(self) -> Condition:
        field = self.parse_field()
        token = self.current
        if token.kind == "op":
            if token.text not in COMPARISON_OPERATORS:
                raise QueryError(
                    f'QueryParserError: operator "{token.text}" at column {token.position} '
                    "is not supported; use = < > <= >= IN LIKE"
                )
            self.advance()
            return Condition(field, token.text, self.parse_literal())
        if token.keyword == "IN":
            self.advance()
            self.expect_punct("(")
            values = [self.parse_literal()]
            while self.current.kind == "punct" and self.current.text == ",":
                self.advance()
                values.append(self.parse_literal())
            self.expect_punct(")")
            return Condition(field, "IN", tuple(values))
        if token.keyword == "LIKE":
            self.advance()
            pattern = self.current
            if pattern.kind != "string":
                raise self.fail("a quoted pattern after LIKE")
            self.advance()
            return Condition(field, "LIKE", pattern.value)  # type: ignore[arg-type]
        raise self.fail("an operator (= < > <= >= IN LIKE)")

    def parse_field(self) -> str:
        token = self.current
        if (
            token.kind != "word"
            or token.keyword in _REFUSED_KEYWORDS
            or token.keyword
            in {
                "AND",
                "IN",
                "LIKE",
            }
        ):
            raise self.fail("a field name")
        self.advance()
        return token.text

    def parse_literal(self) -> LiteralValue:
        token = self.current
        if token.kind in ("string", "number"):
            self.advance()
            return token.value  # type: ignore[return-value]
        if token.keyword in ("TRUE", "FALSE"):
            self.advance()
            return token.keyword == "TRUE"
        raise self.fail("a value ('text', a number, true or false)")

    def parse_order_by(self) -> tuple[OrderBy, ...]:
        items = []
        while True:
            field = self.parse_field()
            descending = False
            if self.current.keyword in ("ASC", "DESC"):
                descending = self.advance().keyword == "DESC"
            items.append(OrderBy(field, descending))
            if not (self.current.kind == "punct" and self.current.text == ","):
                return tuple(items)
            self.advance()
