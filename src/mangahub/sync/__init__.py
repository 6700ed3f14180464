"""Keeping the catalog current from MangaDex and AniList: jobs, leases, scheduler."""
