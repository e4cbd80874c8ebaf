"""The sample app's models; ``Base.metadata`` equals the schema at the head revision."""

from __future__ import annotations

import datetime
import decimal
import enum

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class FileStatus(enum.StrEnum):
    UPLOADED = "uploaded"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (sa.UniqueConstraint("email", name="uq_users_email"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(255))
    name: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime.datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
    is_active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    last_login_at: Mapped[datetime.datetime | None] = mapped_column(
        sa.DateTime(timezone=True), index=True
    )


class File(Base):
    __tablename__ = "files"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_files_user_id_users"),
        index=True,
    )
    filename: Mapped[str] = mapped_column(sa.String(255))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[FileStatus] = mapped_column(
        sa.Enum(
            FileStatus,
            name="file_status",
            values_callable=lambda members: [member.value for member in members],
        )
    )
    created_at: Mapped[datetime.datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )


class Analysis(Base):
    __tablename__ = "analyses"
    __table_args__ = (
        sa.CheckConstraint("score >= 0 AND score <= 100", name="ck_analyses_score_range"),
        sa.Index("ix_analyses_file_id_kind", "file_id", "kind"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(
        sa.ForeignKey("files.id", name="fk_analyses_file_id_files")
    )
    kind: Mapped[str] = mapped_column(sa.String(32))
    score: Mapped[decimal.Decimal | None] = mapped_column(sa.Numeric(5, 2))


class HealthMetric(Base):
    __tablename__ = "health_metrics"
    __table_args__ = (
        sa.UniqueConstraint("file_id", "metric", name="uq_health_metrics_file_metric"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(
        sa.ForeignKey("files.id", name="fk_health_metrics_file_id_files"), index=True
    )
    metric: Mapped[str] = mapped_column(sa.String(64))
    value: Mapped[float | None] = mapped_column(sa.Double)
    recorded_at: Mapped[datetime.datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )


class Setting(Base):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)
