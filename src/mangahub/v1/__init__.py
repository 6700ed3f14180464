"""Generated gRPC/protobuf stubs of ``proto/mangahub/v1`` (regenerate with ``make proto``)."""
