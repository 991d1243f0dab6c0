"""The tenant admin console (`/admin` pages, `/api/admin` JSON) and local passwords."""
