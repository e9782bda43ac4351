"""installed licences

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "installed_licences",
        sa.Column("licence_id", sa.String(length=36), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("customer", sa.String(length=254), nullable=False),
        sa.Column("license", sa.String(length=20), nullable=False),
        sa.Column("agents", sa.Integer(), nullable=False),
        sa.Column("addons", sa.JSON(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("installed_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["installed_by"],
            ["users.id"],
            name=op.f("fk_installed_licences_installed_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installed_licences")),
        sa.UniqueConstraint("licence_id", name=op.f("uq_installed_licences_licence_id")),
    )


def downgrade() -> None:
    op.drop_table("installed_licences")
