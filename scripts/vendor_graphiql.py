"""Fetch GraphiQL's browser assets from the npm registry into app/static/graphiql/.

`make graphiql-assets` runs it. Each package tarball is checked against the registry's
own `dist.integrity` (sha512) before a file is taken out of it; the files are written
under `<package>@<version>/<path>` and `manifest.json` records each one's sha384 (the
`integrity=` of the page's tags) and where it came from. The committed files are what
the server serves: a fresh machine needs neither the network nor node.

Pinned to the versions strawberry's own GraphiQL page loads from a CDN today.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
TARGET = Path(__file__).resolve().parent.parent / "app" / "static" / "graphiql"

# name in the page -> (package, version, file in the package)
ASSETS = {
    "react.js": ("react", "18.2.0", "umd/react.production.min.js"),
    "react-dom.js": ("react-dom", "18.2.0", "umd/react-dom.production.min.js"),
    "graphiql.js": ("graphiql", "3.8.3", "graphiql.min.js"),
    "graphiql.css": ("graphiql", "3.8.3", "graphiql.min.css"),
    "explorer.js": ("@graphiql/plugin-explorer", "1.0.2", "dist/index.umd.js"),
    "explorer.css": ("@graphiql/plugin-explorer", "1.0.2", "dist/style.css"),
}


def sri(data: bytes, algorithm: str = "sha384") -> str:
    return f"{algorithm}-" + base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def tarball(package: str, version: str) -> tuple[bytes, str, str]:
    """The package's tarball, checked against the registry's integrity."""
    meta = json.loads(_get(f"{REGISTRY}/{package}/{version}"))
    dist = meta["dist"]
    data = _get(dist["tarball"])
    if sri(data, "sha512") != dist["integrity"]:
        raise SystemExit(f"{package}@{version}: the tarball does not match dist.integrity")
    return data, dist["tarball"], dist["integrity"]


def main() -> int:
    manifest: dict[str, dict[str, str]] = {}
    tarballs: dict[tuple[str, str], tuple[bytes, str, str]] = {}
    for name, (package, version, member) in ASSETS.items():
        key = (package, version)
        if key not in tarballs:
            tarballs[key] = tarball(package, version)
        data, url, integrity = tarballs[key]
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            extracted = archive.extractfile(f"package/{member}")
            if extracted is None:
                raise SystemExit(f"{package}@{version} has no {member}")
            content = extracted.read()
        path = f"{package}@{version}/{member}"
        (TARGET / path).parent.mkdir(parents=True, exist_ok=True)
        (TARGET / path).write_bytes(content)
        manifest[name] = {
            "package": package,
            "version": version,
            "file": member,
            "path": path,
            "integrity": sri(content),
            "tarball": url,
            "tarball_integrity": integrity,
        }
        sys.stdout.write(f"{path}: {manifest[name]['integrity']}\n")
    (TARGET / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
