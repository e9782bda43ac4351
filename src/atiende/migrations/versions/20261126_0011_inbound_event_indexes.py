"""inbound events: one index for an account's newest events instead of one on the account
(the unique key covers it) and one on the status alone (no query uses it)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 07:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channel_inbound_events", schema=None) as batch_op:
        batch_op.drop_index("ix_channel_inbound_events_account_id")
        batch_op.drop_index("ix_channel_inbound_events_status")
        batch_op.create_index(
            "ix_channel_inbound_events_account_received",
            ["account_id", "received_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("channel_inbound_events", schema=None) as batch_op:
        batch_op.drop_index("ix_channel_inbound_events_account_received")
        batch_op.create_index("ix_channel_inbound_events_status", ["status"], unique=False)
        batch_op.create_index("ix_channel_inbound_events_account_id", ["account_id"], unique=False)
