"""Report downloads (``reports`` add-on)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Response

from atiende.reports import service
from atiende.web.deps import CurrentPrincipal, Session

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])


@router.get("/interactions.csv", response_class=Response)
async def interactions_csv(
    principal: CurrentPrincipal,
    session: Session,
    since: datetime = Query(description="ISO 8601 with offset; inclusive"),
    until: datetime = Query(description="ISO 8601 with offset; exclusive"),
) -> Response:
    """Interaction history with wait, first-response and handling times. Needs the
    ``reports`` add-on (`403 addon_required`)."""
    body = await service.interactions_csv(session, principal.actor, since=since, until=until)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="interactions.csv"'},
    )
