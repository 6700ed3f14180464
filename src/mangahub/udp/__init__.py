"""UDP notification door (port 8082) and its internal HTTP trigger (port 8085)."""
