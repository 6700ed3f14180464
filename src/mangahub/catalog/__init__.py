"""The bundled catalog (real MangaDex series) and the record format imports share."""
