"""Promo-code tracking (seed: track-service.md): each user's promo code per track type, and the record of
who arrived through whose code."""
