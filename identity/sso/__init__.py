"""Member login through the tenant's auth centre, and the sessions it creates (contract §5)."""
