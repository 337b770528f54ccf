"""What is active: offers and campaigns on a day, and members' product recommendations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from nbo.plans import MAX_RECOMMENDATIONS
from nbo.serving.deps import ReaderService
from nbo.serving.routes.offers import (
    ERRORS,
    AtQuery,
    MemberPath,
    member_ids,
    plan_for,
    shown_key,
)
from nbo.serving.schemas import (
    Campaign,
    CampaignList,
    OfferInfo,
    OfferList,
    Recommendation,
    RecommendationsResponse,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["catalogue"])


@router.get("/offers", response_model=OfferList, responses=ERRORS)
async def list_offers(service: ReaderService, at: AtQuery = None) -> OfferList:
    """Offers valid at ``at`` (their campaign's window holds the day)."""
    when = service.resolve_at(at)
    info = (await plan_for(service, when)).offer_info.values()
    return OfferList(at=when, offers=[OfferInfo.model_validate(row) for row in info])


@router.get("/campaigns", response_model=CampaignList, responses=ERRORS)
async def list_campaigns(service: ReaderService, at: AtQuery = None) -> CampaignList:
    """Campaigns running at ``at``."""
    when = service.resolve_at(at)
    rows = (await plan_for(service, when)).campaigns.iter_rows(named=True)
    return CampaignList(
        at=when,
        campaigns=[
            Campaign(
                campaign_id=r["campaign_id"],
                campaign_type=r.get("campaign_type"),
                name=r.get("name"),
                start_date=r["start_date"],
                end_date=r["end_date"],
                targeted=bool(r["targeted"]),
            )
            for r in rows
        ],
    )


@router.get(
    "/members/{member_id}/recommendations",
    response_model=RecommendationsResponse,
    responses=ERRORS,
    tags=["offers"],
)
async def recommendations(
    member_id: MemberPath,
    service: ReaderService,
    at: AtQuery = None,
    k: Annotated[int, Query(ge=1, le=MAX_RECOMMENDATIONS)] = 10,
) -> RecommendationsResponse:
    """The products the member is likely to buy next, with a reason each."""
    when = service.resolve_at(at)
    plan = await plan_for(service, when)
    (internal,) = member_ids(plan, [member_id], "member")
    arm = service.arm(internal, plan)
    source = arm if arm in plan.arms else "champion"
    rows = plan.recommendations(source, internal)
    cold = rows is None or any(bool(r["cold_start"]) for r in rows)
    chosen = (rows if rows is not None else plan.cold_recommendations(source))[:k]
    return RecommendationsResponse(
        member_id=shown_key(plan, member_id, internal),
        at=when,
        cold_start=cold,
        model_version=plan.arms[source].model.version,
        products=[Recommendation.model_validate(r) for r in chosen],
    )
