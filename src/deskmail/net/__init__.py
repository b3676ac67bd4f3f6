"""Network plumbing shared by every protocol: the TLS policy, error translation, the protocol log."""
