"""Django-free primitives shared by every app: errors, clock, market calendar, rate limits."""
