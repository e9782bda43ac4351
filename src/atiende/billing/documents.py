"""What the vendor sends to a buyer: invoice PDFs (built from the stored invoice, so the
same invoice always renders the same document) and the e-mails that carry them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.billing import invoice_pdf, pricing
from atiende.billing.models import BillingAccount, Invoice, InvoiceLine, Payment
from atiende.core.config import Settings
from atiende.mail import service as mail


async def invoice_document(
    session: AsyncSession, invoice: Invoice, *, settings: Settings, locale: str
) -> invoice_pdf.InvoiceDocument:
    lines = (
        await session.scalars(
            select(InvoiceLine)
            .where(InvoiceLine.invoice_id == invoice.id)
            .order_by(InvoiceLine.position)
        )
    ).all()
    paid = await session.scalar(select(Payment.id).where(Payment.invoice_id == invoice.id))
    bill_to = invoice.bill_to
    return invoice_pdf.InvoiceDocument(
        issuer=invoice_pdf.Party(
            name=settings.invoice_issuer_name,
            address=settings.invoice_issuer_address or None,
            tax_id=settings.invoice_issuer_tax_id or None,
        ),
        customer=invoice_pdf.Party(
            name=str(bill_to.get("company") or ""),
            email=str(bill_to.get("email") or "") or None,
            address=(str(bill_to["address"]) if bill_to.get("address") else None),
            tax_id=(str(bill_to["tax_id"]) if bill_to.get("tax_id") else None),
        ),
        number=invoice.display_number,
        issued_on=invoice.issued_at.date(),
        due_on=invoice.due_at.date(),
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        currency=invoice.currency,
        lines=tuple(
            invoice_pdf.Line(
                description=line.description,
                quantity=line.quantity,
                unit_cents=line.unit_cents,
                amount_cents=line.amount_cents,
            )
            for line in lines
        ),
        total_cents=invoice.total_cents,
        paid=paid is not None,
        locale=locale,
    )


async def invoice_pdf_bytes(
    session: AsyncSession, invoice: Invoice, *, settings: Settings, locale: str
) -> bytes:
    document = await invoice_document(session, invoice, settings=settings, locale=locale)
    return invoice_pdf.render_invoice_pdf(document)


async def mail_invoice(
    session: AsyncSession, invoice: Invoice, account: BillingAccount, *, settings: Settings
) -> None:
    """Queue the invoice e-mail with its PDF; it leaves only if the invoice commits."""
    pdf = await invoice_pdf_bytes(session, invoice, settings=settings, locale=account.locale)
    total = f"{invoice.currency} {pricing.format_cents(invoice.total_cents)}"
    due = invoice.due_at.date().isoformat()
    link = f"{settings.public_url.rstrip('/')}/portal"
    if account.locale == "es":
        subject = f"Factura {invoice.display_number} — {total}"
        text = (
            f"Hola:\n\nAdjuntamos la factura {invoice.display_number} por {total}, "
            f"con vencimiento el {due}.\n\nPago: {settings.bank_transfer_instructions}\n"
            f"Consulta tus facturas en {link}\n\n"
            "Las suscripciones se renuevan mensualmente; no hay reembolsos.\n"
        )
    else:
        subject = f"Invoice {invoice.display_number} — {total}"
        text = (
            f"Hello,\n\nAttached is invoice {invoice.display_number} for {total}, "
            f"due on {due}.\n\nPayment: {settings.bank_transfer_instructions}\n"
            f"Your invoices are at {link}\n\n"
            "Subscriptions renew monthly; no refunds.\n"
        )
    await mail.queue_mail(
        session,
        to=account.email,
        subject=subject,
        text=text,
        attachments=[
            mail.Attachment(
                filename=f"{invoice.display_number}.pdf",
                content_type="application/pdf",
                content=pdf,
            )
        ],
        kind="billing.invoice",
    )
