"""The GDPR by design (issue 19): the right of access (`exports`: one archive of every row
and file about a client, e-mailed as a signed expiring link) and the right to erasure
(`erasure`: personal data replaced by tombstones, files deleted, accounting kept)."""
