"""outbound mail

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbound_mail",
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("to_address", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            sa.Enum("queued", "sent", "failed", name="mailstatus", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_outbound_mail_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_mail")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbound_mail_message_id")),
    )
    with op.batch_alter_table("outbound_mail", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbound_mail_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "outbound_mail_attachments",
        sa.Column("mail_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["mail_id"],
            ["outbound_mail.id"],
            name=op.f("fk_outbound_mail_attachments_mail_id_outbound_mail"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_outbound_mail_attachments_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_mail_attachments")),
        sa.UniqueConstraint(
            "mail_id", "position", name=op.f("uq_outbound_mail_attachments_mail_id_position")
        ),
    )
    with op.batch_alter_table("outbound_mail_attachments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbound_mail_attachments_tenant_id"), ["tenant_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outbound_mail_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbound_mail_attachments_tenant_id"))
    op.drop_table("outbound_mail_attachments")
    with op.batch_alter_table("outbound_mail", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbound_mail_tenant_id"))
    op.drop_table("outbound_mail")
