from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from webapp.db import Base, UTCDateTime


class OpsSample(Base):
    """One process's cumulative counters and gauges at one moment (webapp.ops.figures says which).

    Every web, worker and scheduler process writes one every OPS_SAMPLE_SECONDS; rows older than
    two hours are deleted. `process` names the process (kind, host, pid) and `started_at` tells a
    restart under the same name apart, so its counters are known to have begun again at zero."""

    __tablename__ = "ops_samples"
    __table_args__ = (Index("ix_ops_samples_taken_at", "taken_at"),)

    # Samples come and go quickly (a few processes × 6 a minute, around the clock): 64-bit ids.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    process: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
