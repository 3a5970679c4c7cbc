"""smscd: the carrier SMPP connector for the VssID password-reset shortcode 8079."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
