"""Values shared by every layer: no database, no framework (imported by settings too)."""
