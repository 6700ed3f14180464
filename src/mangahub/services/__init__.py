"""Business rules, one module per area. Doors call these; these call storage."""
