"""The review loop: conversations, their audit trail, platform cursors and status.

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 00:50:35.913959
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('conversations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('external_id', sa.String(length=512), nullable=False),
    sa.Column('thread_key', sa.String(length=512), nullable=False),
    sa.Column('thread_ref', sa.JSON(), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('author_id', sa.String(length=255), nullable=False),
    sa.Column('author_handle', sa.String(length=255), nullable=False),
    sa.Column('author_name', sa.String(length=255), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('url', sa.String(length=1024), nullable=False),
    sa.Column('parent_text', sa.Text(), nullable=True),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('needs_reply', sa.Boolean(), nullable=True),
    sa.Column('category', sa.String(length=20), nullable=True),
    sa.Column('sentiment', sa.String(length=20), nullable=True),
    sa.Column('urgency', sa.String(length=20), nullable=True),
    sa.Column('triage_reason', sa.Text(), nullable=True),
    sa.Column('draft_text', sa.Text(), nullable=True),
    sa.Column('draft_error', sa.Text(), nullable=True),
    sa.Column('policy_problems', sa.JSON(), nullable=False),
    sa.Column('slack_channel', sa.String(length=32), nullable=True),
    sa.Column('slack_ts', sa.String(length=32), nullable=True),
    sa.Column('carding_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=32), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dismiss_reason', sa.String(length=32), nullable=True),
    sa.Column('reply_text', sa.Text(), nullable=True),
    sa.Column('reply_edited', sa.Boolean(), nullable=True),
    sa.Column('reply_id', sa.String(length=512), nullable=True),
    sa.Column('reply_url', sa.String(length=1024), nullable=True),
    sa.Column('replied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('posting_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('post_attempts', sa.Integer(), nullable=False),
    sa.Column('post_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('platform', 'external_id', name='uq_conversation_mention')
    )
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.create_index('ix_conversations_state_received', ['state', 'received_at'], unique=False)
        batch_op.create_index('ix_conversations_thread', ['platform', 'thread_key'], unique=False)

    op.create_table('platform_cursors',
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('feed', sa.String(length=255), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('platform', 'feed')
    )
    op.create_table('platform_status',
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('platform')
    )
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_conversation_id'), ['conversation_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_conversation_id'))

    op.drop_table('audit_events')
    op.drop_table('platform_status')
    op.drop_table('platform_cursors')
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_conversations_thread')
        batch_op.drop_index('ix_conversations_state_received')

    op.drop_table('conversations')
