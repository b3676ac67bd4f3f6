"""OAuth2 sign-in for mail accounts: providers, client registration, flows and tokens.

- :mod:`.providers`: the providers' endpoints, scopes and SASL mechanism (from their public
  documentation), and the client registration a user or packager supplies (``[oauth2.<provider>]`` in
  ``deskmail.toml`` or environment variables; deskmail never pretends to be another program);
- :mod:`.flows`: authorization code + PKCE with a loopback redirect (RFC 8252), device authorization
  grant (RFC 8628);
- :mod:`.tokens`: the refresh token in the OS keyring, access tokens refreshed before they expire and
  once more when a server refuses one; a dead refresh token means "sign in again", never a loop.

The protocol adapters see an access token as a :class:`deskmail.secrets.Secret` (with ``renew``).
"""
