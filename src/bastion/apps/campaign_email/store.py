"""Campaigns and their emails in the metadata database; the review queue reads from here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bastion.errors import BadRequest, Conflict, NotFound
from bastion.storage import Database
from bastion.storage.tables import Campaign, CampaignEmail

DECISIONS = {"approve": "approved", "reject": "rejected", "edit": "edited"}


class Campaigns:
    """One tenant's campaigns."""

    def __init__(self, db: Database, tenant: str) -> None:
        self._db = db
        self.tenant = tenant

    def open(self, name: str, segment: str, version: int, brief: str, user: str) -> Campaign:
        """The campaign `name`, created on its first run; a later run must be for the same
        segment version and brief (it resumes), or it is a different campaign."""
        for _ in range(2):
            try:
                with self._db.session(write_lock=True) as s:
                    row = s.scalar(
                        select(Campaign).where(
                            Campaign.tenant_id == self.tenant, Campaign.name == name
                        )
                    )
                    if row is None:
                        row = Campaign(
                            tenant_id=self.tenant,
                            name=name,
                            segment=segment,
                            segment_version=version,
                            brief=brief,
                            created_by=user,
                            created_at=datetime.now(UTC),
                        )
                        s.add(row)
            except IntegrityError:  # another replica created it first: read theirs
                continue
            if (row.segment, row.segment_version, row.brief) != (segment, version, brief):
                raise Conflict(
                    f"campaign '{name}' exists for segment '{row.segment}' version "
                    f"{row.segment_version} with another brief; give another --campaign name "
                    "(the same name resumes only the same campaign)"
                )
            return row
        raise Conflict(f"campaign '{name}' is being created by someone else; try again")

    def get(self, name: str) -> Campaign:
        with self._db.session() as s:
            row = s.scalar(
                select(Campaign).where(Campaign.tenant_id == self.tenant, Campaign.name == name)
            )
        if row is None:
            raise NotFound(f"no campaign '{name}' in tenant '{self.tenant}'")
        return row

    def recorded(self, campaign: Campaign) -> set[str]:
        """The members whose email (or skip) is already recorded: a resumed run skips them."""
        with self._db.session() as s:
            rows = s.scalars(
                select(CampaignEmail.contact_id).where(CampaignEmail.campaign_id == campaign.id)
            )
            return set(rows)

    def record(self, campaign: Campaign, **fields: Any) -> CampaignEmail:
        row = CampaignEmail(campaign_id=campaign.id, created_at=datetime.now(UTC), **fields)
        with self._db.session() as s:
            s.add(row)
        return row

    def emails(self, campaign: Campaign, status: str | None = None) -> list[CampaignEmail]:
        query = select(CampaignEmail).where(CampaignEmail.campaign_id == campaign.id)
        if status is not None:
            query = query.where(CampaignEmail.status == status)
        with self._db.session() as s:
            return list(s.scalars(query.order_by(CampaignEmail.contact_id)))

    def decide(
        self,
        campaign: Campaign,
        contact_id: str,
        decision: str,
        reviewer: str,
        *,
        body: str | None = None,
        subject: str | None = None,
        comment: str | None = None,
    ) -> CampaignEmail:
        """Record a review decision on a drafted email (an edit replaces its body, and its
        subject when one is given)."""
        if decision not in DECISIONS:
            raise BadRequest(f"decision must be one of {', '.join(DECISIONS)}, not '{decision}'")
        if decision == "edit" and not (body or "").strip():
            raise BadRequest("an edit needs the new body")
        with self._db.session(write_lock=True) as s:
            row = s.scalar(
                select(CampaignEmail).where(
                    CampaignEmail.campaign_id == campaign.id,
                    CampaignEmail.contact_id == contact_id,
                )
            )
            if row is None:
                raise NotFound(f"campaign '{campaign.name}' has no email to '{contact_id}'")
            if row.status != "draft":
                raise Conflict(
                    f"the email to '{contact_id}' is {row.status}, not a draft awaiting review"
                )
            row.status = DECISIONS[decision]
            row.reviewer = reviewer
            row.review_comment = comment
            row.reviewed_at = datetime.now(UTC)
            if body is not None and decision == "edit":
                row.body = body
                if (subject or "").strip():
                    row.subject = (subject or "").strip()
        return row

    def email(self, email_id: int) -> tuple[Campaign, CampaignEmail]:
        """One email of the tenant's campaigns by its id; another tenant's is not found."""
        with self._db.session() as s:
            found = s.execute(
                select(Campaign, CampaignEmail)
                .join(Campaign, Campaign.id == CampaignEmail.campaign_id)
                .where(CampaignEmail.id == email_id, Campaign.tenant_id == self.tenant)
            ).first()
        if found is None:
            raise NotFound(f"no campaign email {email_id} in tenant '{self.tenant}'")
        return found[0], found[1]

    def drafts(self, limit: int, offset: int = 0) -> tuple[list[tuple[str, CampaignEmail]], int]:
        """A page of the drafts awaiting review in all the tenant's campaigns (oldest
        first, as they were written), each with its campaign's name; and how many in all."""
        where = (Campaign.tenant_id == self.tenant, CampaignEmail.status == "draft")
        with self._db.session() as s:
            rows = s.execute(
                select(Campaign.name, CampaignEmail)
                .join(Campaign, Campaign.id == CampaignEmail.campaign_id)
                .where(*where)
                .order_by(CampaignEmail.id)
                .limit(limit)
                .offset(offset)
            ).all()
            total = s.scalar(
                select(func.count())
                .select_from(CampaignEmail)
                .join(Campaign, Campaign.id == CampaignEmail.campaign_id)
                .where(*where)
            )
        return [(name, email) for name, email in rows], total or 0

    def summaries(self) -> list[dict[str, Any]]:
        """Every campaign with its emails counted by status."""
        with self._db.session() as s:
            campaigns = list(
                s.scalars(
                    select(Campaign)
                    .where(Campaign.tenant_id == self.tenant)
                    .order_by(Campaign.name)
                )
            )
            counts = s.execute(
                select(CampaignEmail.campaign_id, CampaignEmail.status, func.count())
                .join(Campaign, Campaign.id == CampaignEmail.campaign_id)
                .where(Campaign.tenant_id == self.tenant)
                .group_by(CampaignEmail.campaign_id, CampaignEmail.status)
            ).all()
        by_campaign: dict[int, dict[str, int]] = {}
        for campaign_id, status, n in counts:
            by_campaign.setdefault(campaign_id, {})[status] = n
        return [
            {
                "name": c.name,
                "segment": c.segment,
                "segment_version": c.segment_version,
                "brief": c.brief,
                "created_by": c.created_by,
                "emails": by_campaign.get(c.id, {}),
            }
            for c in campaigns
        ]
