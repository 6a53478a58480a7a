"""Partners VRAI dossier API."""
