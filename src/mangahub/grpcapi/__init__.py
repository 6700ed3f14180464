"""The gRPC door (port 8083): ``mangahub.v1.MangaService`` on ``grpc.aio``.

- :mod:`.service` validates requests and calls the same services as HTTP;
- :mod:`.convert` turns domain objects into the generated messages (``mangahub.v1``);
- :mod:`.errors` maps the domain error tree onto gRPC status codes;
- :mod:`.auth` reads the bearer token from the call's metadata;
- :mod:`.server` runs it all as a ManagedServer, with health and reflection.
"""
