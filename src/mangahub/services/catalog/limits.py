"""Column limits of storage/models.py, checked before a bulk insert can trip on them."""

MAX_TITLE, MAX_GENRE, MAX_URL, MAX_MANGADEX_ID = 500, 50, 1000, 36
MAX_SLUG_BASE = 200  # leaves room for "-<n>" within the 255-character column
