"""The version of prefdata, recorded in every manifest (the one place it is written; pyproject reads it)."""

__version__ = "0.3.0"
