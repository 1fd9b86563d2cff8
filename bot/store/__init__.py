"""Storage: tables, the database runner, queries, and Alembic migrations."""
