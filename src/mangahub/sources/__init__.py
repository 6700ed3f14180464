"""External catalog sources (MangaDex, AniList): typed records, HTTP clients and the
parsers that turn their real response shapes into catalog records."""
