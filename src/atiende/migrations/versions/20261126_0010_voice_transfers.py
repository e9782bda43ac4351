"""voice transfers and queue actions: a message, voicemail and forwarding for closed hours
and max wait, position announcements, the outside number a call was transferred to, and auto-answer per
extension

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "max_wait_action",
                sa.Enum(
                    "overflow",
                    "message",
                    "voicemail",
                    "forward",
                    name="maxwaitaction",
                    native_enum=False,
                    length=20,
                ),
                server_default="overflow",
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("forward_number", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("voicemail_prompt", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("message_prompt", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("announce_every_seconds", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("extensions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("auto_answer", sa.Boolean(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("forwarded_to", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("consult_agent_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("consult_number", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("consult_state", sa.String(length=20), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_calls_consult_agent_id_users"),
            "users",
            ["consult_agent_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("extensions", schema=None) as batch_op:
        batch_op.drop_column("auto_answer")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_calls_consult_agent_id_users"), type_="foreignkey")
        batch_op.drop_column("consult_state")
        batch_op.drop_column("consult_number")
        batch_op.drop_column("consult_agent_id")
        batch_op.drop_column("forwarded_to")
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_column("announce_every_seconds")
        batch_op.drop_column("message_prompt")
        batch_op.drop_column("voicemail_prompt")
        batch_op.drop_column("forward_number")
        batch_op.drop_column("max_wait_action")
