"""Payment providers: how a buyer pays an invoice and how the money is confirmed.

Every provider ends in ``service.record_payment`` (one payment for a whole invoice, with
the provider's name and reference), so activation, reactivation and licence delivery do not
depend on how the money came in. ``manual`` ships: the buyer transfers, billing staff
confirm. A card gateway implements the same protocol: ``instructions`` returns its checkout
link, and its signed webhook calls ``record_payment`` with the system actor and the
gateway's charge id as the reference (a redelivered webhook meets ``invoice_already_paid``
and changes nothing).
"""

from __future__ import annotations

from typing import Protocol

from atiende.billing.models import Invoice
from atiende.core.config import Settings


class PaymentProvider(Protocol):
    name: str

    def instructions(self, invoice: Invoice, settings: Settings) -> str:
        """What the buyer is told to do to pay this invoice."""
        ...


class ManualProvider:
    """Bank transfer: the buyer quotes the invoice number; billing staff mark it paid."""

    name = "manual"

    def instructions(self, invoice: Invoice, settings: Settings) -> str:
        return f"{settings.bank_transfer_instructions} ({invoice.display_number})"


PROVIDERS: dict[str, PaymentProvider] = {ManualProvider.name: ManualProvider()}


def provider(name: str = ManualProvider.name) -> PaymentProvider:
    return PROVIDERS[name]
