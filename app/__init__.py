"""Multi-tenant ServiceDesk Plus ticket-enhancement service."""
