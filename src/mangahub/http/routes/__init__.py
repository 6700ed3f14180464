"""One router per area; each handler parses, calls a service, and returns its answer."""
