"""Domain rules. A service that changes state does it in one transaction with its events."""
