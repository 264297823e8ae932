"""``SMTPStatus`` under its older module name, as aiosmtplib keeps it for compatibility."""

from __future__ import annotations

from .typing import SMTPStatus

__all__ = ["SMTPStatus"]
