"""The OpenID Provider for the ISV's own apps (docs/provider.md)."""
