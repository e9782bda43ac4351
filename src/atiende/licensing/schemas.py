"""Request and response bodies of the installation's licence API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from atiende.licensing.signing import LicenceStatus, LicenceTerms


class LicenceInstallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: dict[str, Any] = Field(
        description="The licence file as issued: a JSON object with format, payload and signature."
    )


class LicenceTermsOut(BaseModel):
    licence_id: str
    customer: str
    deployment: str
    license: str
    agents: int
    addons: list[str]
    issued_at: datetime | None
    valid_until: date

    @classmethod
    def of(cls, terms: LicenceTerms) -> LicenceTermsOut:
        return cls(
            licence_id=terms.licence_id,
            customer=terms.customer,
            deployment=terms.deployment,
            license=terms.license,
            agents=terms.agents,
            addons=sorted(terms.addons),
            issued_at=terms.issued_at,
            valid_until=terms.valid_until,
        )


class LicenceStatusOut(BaseModel):
    """The installation's licence today: ``terms`` is the licence in force (``active``) or
    the one that lapsed last (``grace``, ``expired``); ``grace_ends_on`` is the last day
    agents may log in; ``days_left`` counts today."""

    state: Literal["active", "grace", "expired", "missing"]
    terms: LicenceTermsOut | None
    grace_ends_on: date | None
    days_left: int

    @classmethod
    def of(cls, status: LicenceStatus) -> LicenceStatusOut:
        return cls(
            state=status.state.value,
            terms=LicenceTermsOut.of(status.terms) if status.terms else None,
            grace_ends_on=status.grace_ends_on,
            days_left=status.days_left,
        )
