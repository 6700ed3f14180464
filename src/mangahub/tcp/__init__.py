"""TCP progress sync: the sans-I/O protocol, the asyncio server and a client."""
