"""Channel adapters: provider events in, rendered replies out."""
