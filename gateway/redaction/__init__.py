"""Redaction: `detectors` finds personal data (the folding, the built-in detectors and their registry);
`engine` replaces it with placeholders and puts it back. Import from the defining module."""
