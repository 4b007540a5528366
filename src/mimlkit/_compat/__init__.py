"""Private compatibility shims (never imported by ``import mimlkit``)."""
