"""Invoice PDFs: the document says what the invoice says, in the customer's language, with
exact amounts, on as many pages as it needs, whatever characters the names contain."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader

from atiende.billing.invoice_pdf import (
    InvoiceDocument,
    Line,
    Party,
    format_money,
    printable,
    render_invoice_pdf,
)

EN_DASH = "\u2013"  # between the first and the last day of a period
LINES = (
    Line("Atiende Cloud Pro — agent licence", 12, 4500, 54000),
    Line("PBX users", 20, 300, 6000),
    Line("WhatsApp channel add-on", 1, 123456, 123456),
)


def _invoice(**changes: object) -> InvoiceDocument:
    lines = changes.pop("lines", LINES)
    assert isinstance(lines, tuple)
    document = InvoiceDocument(
        issuer=Party(
            "Atiende Cloud S.A.",
            address="Av. Insurgentes Sur 1602\nCiudad de México",
            tax_id="ACL201125AB1",
        ),
        customer=Party(
            "Ñandú Logística S.R.L.", email="facturas@nandu.example", address="Calle Falsa 123"
        ),
        number="ATI-2026-000042",
        issued_on=date(2026, 11, 25),
        due_on=date(2026, 11, 30),
        period_start=date(2026, 11, 25),
        period_end=date(2026, 12, 25),
        currency="USD",
        lines=lines,
        total_cents=sum(line.amount_cents for line in lines),
        paid=False,
        locale="en",
    )
    return replace(document, **changes)  # type: ignore[arg-type]


def _pages(pdf: bytes) -> list[str]:
    reader = PdfReader(io.BytesIO(pdf), strict=True)
    return [page.extract_text() for page in reader.pages]


def test_the_text_holds_the_number_customer_lines_and_total() -> None:
    [text] = _pages(render_invoice_pdf(_invoice()))
    assert "INVOICE" in text
    assert "ATI-2026-000042" in text
    assert "Atiende Cloud S.A." in text
    assert "Ñandú Logística S.R.L." in text
    assert "facturas@nandu.example" in text
    for line in LINES:
        assert line.description in text
    assert "USD 45.00" in text
    assert "USD 540.00" in text
    assert "USD 1,234.56" in text
    assert "Total USD 1,834.56" in text
    assert f"25 Nov 2026 {EN_DASH} 24 Dec 2026" in text, "the period's exclusive end is not printed"
    assert "DUE" in text
    assert "Please pay by 30 Nov 2026." in text
    assert "Subscriptions renew monthly; no refunds." in text
    assert "Page 1 of 1" in text


def test_a_spanish_invoice_speaks_spanish() -> None:
    [text] = _pages(render_invoice_pdf(_invoice(locale="es", paid=True)))
    assert "FACTURA" in text
    assert "Número de factura" in text
    assert "Descripción" in text
    assert f"25 nov 2026 {EN_DASH} 24 dic 2026" in text
    assert "PAGADA" in text
    assert "Pagada en su totalidad." in text
    assert "Las suscripciones se renuevan mensualmente; no hay reembolsos." in text
    assert "Página 1 de 1" in text
    assert "Subscriptions" not in text


def test_the_pdf_is_one_valid_document_and_renders_the_same_every_time() -> None:
    pdf = render_invoice_pdf(_invoice())
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    reader = PdfReader(io.BytesIO(pdf), strict=True)
    assert len(reader.pages) == 1
    assert reader.metadata is not None
    assert reader.metadata.title == "Invoice ATI-2026-000042"
    assert render_invoice_pdf(_invoice()) == pdf


def test_an_invoice_with_40_lines_runs_onto_more_pages() -> None:
    lines = tuple(Line(f"Line item {n:02d}", n, 1000, n * 1000) for n in range(1, 41))
    pages = _pages(render_invoice_pdf(_invoice(lines=lines)))
    assert len(pages) >= 2
    count = len(pages)
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {count}" in text
        assert "Description" in text, "the table headings repeat on every page"
    everything = "\n".join(pages)
    found = re.findall(r"Line item (\d\d)", everything)
    assert found == [f"{n:02d}" for n in range(1, 41)], "every line once, in order"
    assert "ATI-2026-000042 (continued)" in pages[1]
    assert "Total USD 8,200.00" in pages[-1]
    assert "Total" not in pages[0].split("Description")[1]


def test_text_outside_the_font_encoding_is_replaced_not_fatal() -> None:
    customer = Party("株式会社 Őrség Kft. 😀 “Citas” € — ¿Sí?", address="Łódź\tul. Długa 1")
    [text] = _pages(render_invoice_pdf(_invoice(customer=customer)))
    assert "???? Orség Kft. ? “Citas” € — ¿Sí?" in text
    assert "Lódz ul. Dluga 1" in text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"Ñandú, ¿qué tal? ¡Sí! €5 {EN_DASH} “ok”", f"Ñandú, ¿qué tal? ¡Sí! €5 {EN_DASH} “ok”"),
        ("Őrség Łódź", "Orség Lódz"),
        ("ﬁle №3", "file No3"),
        ("株式会社 😀", "???? ?"),
        ("a\tb\x00c\nd", "a b c\nd"),
    ],
)
def test_printable_keeps_what_the_font_shows_and_reduces_the_rest(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_amounts_must_add_up_to_the_total() -> None:
    with pytest.raises(ValueError, match="sum of the lines"):
        _invoice(total_cents=1)


def test_an_unknown_locale_is_refused() -> None:
    with pytest.raises(ValueError, match="locale"):
        _invoice(locale="fr")


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (0, "USD 0.00"),
        (5, "USD 0.05"),
        (123456, "USD 1,234.56"),
        (-1999, "USD -19.99"),
        (100_000_000_000_01, "USD 100,000,000,000.01"),
    ],
)
def test_money_is_formatted_from_integer_cents(cents: int, text: str) -> None:
    assert format_money(cents, "USD") == text


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_formatted_money_reads_back_to_the_same_cents(cents: int) -> None:
    text = format_money(cents, "EUR")
    match = re.fullmatch(r"EUR (-?)(\d{1,3}(?:,\d{3})*)\.(\d\d)", text)
    assert match is not None
    sign, units, rest = match.groups()
    value = int(units.replace(",", "")) * 100 + int(rest)
    assert (-value if sign else value) == cents
