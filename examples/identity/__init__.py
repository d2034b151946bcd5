"""The identity service: organizations and their users, with roles."""
