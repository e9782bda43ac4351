"""One adapter per provider, looked up by channel kind."""

from __future__ import annotations

from functools import cache

from atiende.channels.base import Adapter, ChannelKind


@cache
def adapter_for(kind: ChannelKind) -> Adapter:
    if kind is ChannelKind.whatsapp:
        from atiende.channels.adapters.whatsapp import WhatsAppAdapter

        return WhatsAppAdapter()
    if kind is ChannelKind.telegram:
        from atiende.channels.adapters.telegram import TelegramAdapter

        return TelegramAdapter()
    if kind is ChannelKind.sms:
        from atiende.channels.adapters.twilio_sms import TwilioSmsAdapter

        return TwilioSmsAdapter()
    from atiende.channels.adapters.generic_api import GenericApiAdapter

    return GenericApiAdapter()
