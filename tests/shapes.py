"""The public response shapes of SPEC "Shapes", as field sets the tests check against."""

SUMMARY_FIELDS = {
    "id",
    "slug",
    "title",
    "authors",
    "status",
    "format",
    "total_chapters",
    "cover_url",
    "average_rating",
    "popularity",
    "genres",
}
# Details add these (extra fields are allowed by SPEC; these must be present).
DETAIL_FIELDS = SUMMARY_FIELDS | {
    "alt_titles",
    "description",
    "year",
    "mangadex_id",
    "anilist_id",
    "mal_id",
    "volumes",
    "updated_at",
}
