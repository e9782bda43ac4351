"""Invoice PDFs: an ``InvoiceDocument`` in, the bytes of an A4 PDF out.

Pure (no clock, no I/O): the same document always renders the same bytes, so a stored invoice
can be rendered again at any time. Amounts are integer cents and are formatted with integer
arithmetic only. The PDF uses the core Helvetica font in the Windows-1252 encoding, which
covers Spanish and English (accents, ñ, ¿¡, €, typographic quotes and dashes); any other
character is reduced to its unaccented letter or replaced by ``?`` instead of failing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from fpdf import FPDF, FontFace
from fpdf.enums import TableBordersLayout

PDF_ENCODING: Final = "windows-1252"

# Colours of the web app (atiende.css), as RGB.
_TEXT: Final = (27, 34, 48)
_MUTED: Final = (105, 115, 134)
_ACCENT: Final = (59, 91, 219)
_BORDER: Final = (227, 230, 235)
_ZEBRA: Final = (247, 248, 250)
_PAID: Final = ((19, 122, 75), (235, 248, 241))  # text, background
_DUE: Final = ((161, 92, 7), (255, 248, 232))

_LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": "INVOICE",
        "bill_to": "BILL TO",
        "number": "Invoice number",
        "issued_on": "Issue date",
        "due_on": "Due date",
        "period": "Service period",
        "tax_id": "Tax ID",
        "description": "Description",
        "quantity": "Qty",
        "unit": "Unit price",
        "amount": "Amount",
        "total": "Total",
        "paid": "PAID",
        "due": "DUE",
        "paid_note": "Paid in full. Thank you.",
        "due_note": "Please pay by {date}.",
        "continued": "Invoice {number} (continued)",
        "page": "Page {page} of {pages}",
        "terms": "Subscriptions renew monthly; no refunds.",
    },
    "es": {
        "title": "FACTURA",
        "bill_to": "FACTURAR A",
        "number": "Número de factura",
        "issued_on": "Fecha de emisión",
        "due_on": "Fecha de vencimiento",
        "period": "Periodo de servicio",
        "tax_id": "Id. fiscal",
        "description": "Descripción",
        "quantity": "Cant.",
        "unit": "Precio unitario",
        "amount": "Importe",
        "total": "Total",
        "paid": "PAGADA",
        "due": "PENDIENTE",
        "paid_note": "Pagada en su totalidad. Gracias.",
        "due_note": "Fecha límite de pago: {date}.",
        "continued": "Factura {number} (continuación)",
        "page": "Página {page} de {pages}",
        "terms": "Las suscripciones se renuevan mensualmente; no hay reembolsos.",
    },
}
_MONTHS: Final = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "es": ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"),
}


@dataclass(frozen=True, slots=True)
class Party:
    """The issuer or the customer. ``address`` may span several lines (``\\n``)."""

    name: str
    email: str | None = None
    address: str | None = None
    tax_id: str | None = None


@dataclass(frozen=True, slots=True)
class Line:
    description: str
    quantity: int
    unit_cents: int
    amount_cents: int


@dataclass(frozen=True, slots=True)
class InvoiceDocument:
    """Everything printed on an invoice. ``period_end`` is exclusive, as billing periods are
    everywhere (``[start, end)``): the invoice shows the last day included. ``total_cents``
    must be the sum of the lines' amounts."""

    issuer: Party
    customer: Party
    number: str
    issued_on: date
    due_on: date
    currency: str
    lines: Sequence[Line]
    total_cents: int
    paid: bool
    locale: str = "es"
    period_start: date | None = None
    period_end: date | None = None

    def __post_init__(self) -> None:
        language = self.locale.split("-")[0].lower()
        if language not in _LABELS:
            raise ValueError(f"no invoice labels for locale {self.locale!r}")
        object.__setattr__(self, "locale", language)
        object.__setattr__(self, "lines", tuple(self.lines))
        if sum(line.amount_cents for line in self.lines) != self.total_cents:
            raise ValueError("total_cents is not the sum of the lines' amounts")
        if (self.period_start is None) != (self.period_end is None):
            raise ValueError("a period needs both its start and its end")


def format_money(cents: int, currency: str) -> str:
    """``123456, "USD"`` → ``USD 1,234.56``; integer arithmetic only."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{currency} {sign}{units:,}.{rest:02d}"


def format_date(day: date, locale: str) -> str:
    """``25 Nov 2026`` / ``25 nov 2026``."""
    return f"{day.day} {_MONTHS[locale][day.month - 1]} {day.year}"


# Latin letters with a stroke have no Unicode decomposition to fall back on.
_NO_DECOMPOSITION: Final = {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h"}


def printable(text: str) -> str:
    """``text`` reduced to what the PDF's font encoding can show: accents outside it are
    dropped (``ő`` → ``o``), other characters become ``?``, control characters spaces."""
    out: list[str] = []
    for char in unicodedata.normalize("NFC", text):
        if char == "\n":
            out.append(char)
        elif unicodedata.category(char) == "Cc":
            out.append(" ")
        elif _encodable(char):
            out.append(char)
        elif char in _NO_DECOMPOSITION:
            out.append(_NO_DECOMPOSITION[char])
        else:
            base = "".join(
                c
                for c in unicodedata.normalize("NFKD", char)
                if _encodable(c) and not unicodedata.combining(c)
            )
            out.append(base or "?")
    return "".join(out)


def _encodable(char: str) -> bool:
    try:
        char.encode(PDF_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def render_invoice_pdf(document: InvoiceDocument) -> bytes:
    # Two passes: the first counts the pages for "Page 1 of N". (fpdf2's page-count alias
    # is replaced after layout, which would misplace right-aligned text.)
    draft = _InvoicePdf(document, pages=0)
    draft.render()
    pdf = _InvoicePdf(document, pages=draft.page_no())
    pdf.render()
    return bytes(pdf.output())


class _InvoicePdf(FPDF):
    MARGIN: Final = 18.0
    FOOTER_HEIGHT: Final = 22.0
    # Description, quantity, unit price, amount: the page's 174 mm.
    COLUMNS: Final = (92.0, 16.0, 33.0, 33.0)
    PADDING: Final = 2.5

    def __init__(self, document: InvoiceDocument, *, pages: int) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.document = document
        self.total_pages = pages
        self.labels = _LABELS[document.locale]
        self.core_fonts_encoding = PDF_ENCODING
        self.set_margins(self.MARGIN, self.MARGIN, self.MARGIN)
        # Text sits as far inside its cell as inside the table's cells, so every text edge on
        # the page lines up with the table's.
        self.c_margin = self.PADDING
        self.set_auto_page_break(auto=True, margin=self.FOOTER_HEIGHT)
        title = f"{self.labels['title'].title()} {document.number}"
        self.set_title(printable(title))
        self.set_author(printable(document.issuer.name))
        self.set_creator("Atiende")
        # A fixed date keeps the bytes the same every time the invoice is rendered.
        self.set_creation_date(datetime.combine(document.issued_on, time(), tzinfo=UTC))

    # -- page furniture ------------------------------------------------------------------

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self._font(8, color=_MUTED)
        issuer = printable(self.document.issuer.name)
        continued = printable(self.labels["continued"].format(number=self.document.number))
        self.cell(self.epw / 2, 5, issuer)
        self.cell(self.epw / 2, 5, continued, align="R", new_x="LMARGIN", new_y="NEXT")
        self._rule()
        self.ln(4)

    def footer(self) -> None:
        self.set_y(-self.FOOTER_HEIGHT + 6)
        self._rule()
        self.ln(2)
        self._font(8, color=_MUTED)
        page = self.labels["page"].format(page=self.page_no(), pages=self.total_pages)
        self.cell(self.epw - 40, 4, printable(self.labels["terms"]))
        self.cell(40, 4, printable(page), align="R")

    # -- content -------------------------------------------------------------------------

    def render(self) -> None:
        self.add_page()
        self._heading()
        self._parties()
        self._lines()
        self._total()

    def _heading(self) -> None:
        document, labels = self.document, self.labels
        top = self.get_y()
        half = self.epw / 2
        self._font(16, "B")
        self.multi_cell(half + 20, 7, printable(document.issuer.name), align="L", new_x="LMARGIN")
        self._font(9, color=_MUTED)
        details = _address_lines(document.issuer.address)
        if document.issuer.email:
            details.append(document.issuer.email)
        if document.issuer.tax_id:
            details.append(f"{labels['tax_id']}: {document.issuer.tax_id}")
        for line in details:
            self.multi_cell(half, 4.5, printable(line), align="L", new_x="LMARGIN")
        left_bottom = self.get_y()

        self.set_xy(self.l_margin + half, top)
        self._font(22, "B", color=_ACCENT)
        self.cell(half, 9, printable(labels["title"]), align="R", new_x="LMARGIN", new_y="NEXT")
        self._status_badge(top + 11)
        self.set_y(max(left_bottom, top + 19) + 5)
        self._rule()
        self.ln(6)

    def _status_badge(self, y: float) -> None:
        paid = self.document.paid
        text = printable(self.labels["paid" if paid else "due"])
        foreground, background = _PAID if paid else _DUE
        self._font(9, "B", color=foreground)
        width = self.get_string_width(text) + 8
        x = self.l_margin + self.epw - self.PADDING - width
        self.set_fill_color(*background)
        self.set_draw_color(*foreground)
        self.set_line_width(0.3)
        self.rect(x, y, width, 6.5, style="DF", round_corners=True, corner_radius=1.5)
        self.set_xy(x, y)
        self.cell(width, 6.5, text, align="C")

    def _parties(self) -> None:
        document, labels = self.document, self.labels
        top = self.get_y()
        left = self.epw * 0.55
        customer = document.customer
        self._font(8, "B", color=_MUTED)
        self.cell(left, 5, printable(labels["bill_to"]), new_x="LMARGIN", new_y="NEXT")
        self._font(11, "B")
        self.multi_cell(
            left - 4, 5.5, printable(customer.name), align="L", new_x="LMARGIN", new_y="NEXT"
        )
        self._font(9, color=_MUTED)
        details = [customer.email] if customer.email else []
        details += _address_lines(customer.address)
        if customer.tax_id:
            details.append(f"{labels['tax_id']}: {customer.tax_id}")
        for line in details:
            self.multi_cell(left - 4, 4.5, printable(line), align="L", new_x="LMARGIN")
        left_bottom = self.get_y()

        meta = [
            (labels["number"], document.number),
            (labels["issued_on"], format_date(document.issued_on, document.locale)),
            (labels["due_on"], format_date(document.due_on, document.locale)),
        ]
        if document.period_start is not None and document.period_end is not None:
            last_day = document.period_end - timedelta(days=1)
            period = (
                f"{format_date(document.period_start, document.locale)} \u2013 "
                f"{format_date(last_day, document.locale)}"
            )
            meta.append((labels["period"], period))
        x = self.l_margin + left
        width = self.epw - left
        self.set_y(top)
        for label, value in meta:
            self.set_x(x)
            self._font(9, color=_MUTED)
            self.cell(width * 0.45, 5.5, printable(label))
            self._font(9, "B")
            self.cell(width * 0.55, 5.5, printable(value), align="R", new_x="LMARGIN", new_y="NEXT")
        self.set_y(max(left_bottom, self.get_y()) + 10)

    def _lines(self) -> None:
        document, labels = self.document, self.labels
        self.set_draw_color(*_BORDER)
        self.set_fill_color(255, 255, 255)  # the rows between the shaded ones
        self.set_line_width(0.2)
        self._font(9)
        headings = FontFace(emphasis="BOLD", color=(255, 255, 255), fill_color=_ACCENT)
        with self.table(
            col_widths=self.COLUMNS,
            width=self.epw,
            text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"),
            borders_layout=TableBordersLayout.HORIZONTAL_LINES,
            headings_style=headings,
            cell_fill_color=_ZEBRA,
            cell_fill_mode="ROWS",
            line_height=5,
            padding=(1.6, self.PADDING),
            repeat_headings=1,
        ) as table:
            heading = table.row()
            for key in ("description", "quantity", "unit", "amount"):
                heading.cell(printable(labels[key]))
            for line in document.lines:
                row = table.row()
                row.cell(printable(line.description))
                row.cell(f"{line.quantity:,}")
                row.cell(format_money(line.unit_cents, printable(document.currency)))
                row.cell(format_money(line.amount_cents, printable(document.currency)))

    def _total(self) -> None:
        document, labels = self.document, self.labels
        if self.will_page_break(22):
            self.add_page()
        self.ln(3)
        width = self.COLUMNS[2] + self.COLUMNS[3]
        x = self.l_margin + self.epw - width
        self.set_draw_color(*_TEXT)
        self.set_line_width(0.5)
        self.line(x, self.get_y(), x + width, self.get_y())
        self.ln(2)
        self.set_x(x)
        self._font(11, "B")
        self.cell(width * 0.35, 8, printable(labels["total"]))
        total = format_money(document.total_cents, printable(document.currency))
        self.cell(width * 0.65, 8, total, align="R", new_x="LMARGIN", new_y="NEXT")
        self._font(9, color=_PAID[0] if document.paid else _DUE[0])
        if document.paid:
            note = labels["paid_note"]
        else:
            note = labels["due_note"].format(date=format_date(document.due_on, document.locale))
        self.cell(self.epw, 5, printable(note), align="R", new_x="LMARGIN", new_y="NEXT")

    # -- helpers -------------------------------------------------------------------------

    def _font(self, size: float, style: str = "", *, color: tuple[int, int, int] = _TEXT) -> None:
        self.set_font("Helvetica", style, size)
        self.set_text_color(*color)

    def _rule(self) -> None:
        self.set_draw_color(*_BORDER)
        self.set_line_width(0.3)
        y = self.get_y()
        self.line(self.l_margin, y, self.l_margin + self.epw, y)


def _address_lines(address: str | None) -> list[str]:
    if not address:
        return []
    return [line.strip() for line in address.splitlines() if line.strip()]
