"""Helpers for the workflow, documents and storage tests: real files, multipart requests
built byte by byte (GraphQL multipart request spec), a moto S3 server, small-cap apps."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.helpers import gql

PREFLIGHT = {"apollo-require-preflight": "true"}

UPLOAD = """
mutation Upload($input: UploadDocumentInput!) {
  uploadDocument(input: $input) {
    document { id status currentVersion { id versionNumber } }
    version { id versionNumber fileName fileSizeBytes mimeType uploadedByType }
    dossier { id status }
    userErrors { field message code }
  }
}
"""

REVIEW = """
mutation Review($input: ReviewDocumentInput!) {
  reviewDocument(input: $input) {
    review { id status reason notes reviewer { id } version { id versionNumber } }
    document { id status }
    dossier { id status completedAt currentStep { id position } }
    userErrors { field message code }
  }
}
"""

DOSSIER = """
query Dossier($id: ID!) {
  dossier(id: $id) {
    id status completedAt
    currentStep { id position documents { id status documentType { code } } }
    steps {
      id position isRequired startedAt completedAt skippedAt
      assignedTo { id }
      documents { id status currentVersion { id versionNumber } }
    }
    statusHistory { oldStatus newStatus changedByType changedById reason }
  }
}
"""


# --- real files ------------------------------------------------------------------------


def make_pdf(text: str = "Hello", *, size: int | None = None) -> bytes:
    """A valid one-page PDF (correct xref offsets); `size` pads it to exactly that many
    bytes with a stream object of random bytes."""
    content = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]

    def build(padding: bytes | None) -> bytes:
        bodies = list(objects)
        if padding is not None:
            bodies.append(b"<< /Length %d >>\nstream\n" % len(padding) + padding + b"\nendstream")
        out = io.BytesIO()
        out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(bodies, start=1):
            offsets.append(out.tell())
            out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
        xref = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1))
        for offset in offsets:
            out.write(b"%010d 00000 n \n" % offset)
        out.write(
            b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(bodies) + 1, xref)
        )
        return out.getvalue()

    if size is None:
        return build(None)
    padding = os.urandom(max(0, size - len(build(b""))))
    for _ in range(3):  # digits of /Length and offsets may shift by a byte or two
        pdf = build(padding)
        if len(pdf) == size:
            return pdf
        padding = (
            padding[: len(padding) - (len(pdf) - size)]
            if len(pdf) > size
            else (padding + os.urandom(size - len(pdf)))
        )
    return build(padding)


def make_png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
        )

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_exe() -> bytes:
    """The start of a Windows PE executable (MZ header pointing at a PE signature)."""
    dos = bytearray(b"MZ" + b"\x90\x00" + b"\x00" * 56)
    dos[0x3C:0x40] = (64).to_bytes(4, "little")
    return bytes(dos) + b"PE\x00\x00" + b"\x4c\x01" + b"\x00" * 200


# --- multipart (GraphQL multipart request spec) -----------------------------------------


def multipart_body(
    operations: dict[str, Any],
    files: list[tuple[bytes | str, bytes, str]],
    *,
    file_map: dict[str, list[str]] | None = None,
    boundary: str | None = None,
) -> tuple[bytes, str]:
    """The body and its content type. `files` are (filename, content, content type); the
    filename goes into the part header byte for byte, whatever it contains."""
    boundary = boundary or f"----test{uuid.uuid4().hex}"
    file_map = file_map if file_map is not None else {"0": ["variables.input.file"]}
    out = io.BytesIO()

    def field(name: str, value: str) -> None:
        out.write(f"--{boundary}\r\n".encode())
        out.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")

    field("operations", json.dumps(operations))
    field("map", json.dumps(file_map))
    for index, (filename, content, content_type) in enumerate(files):
        name = filename.encode() if isinstance(filename, str) else filename
        out.write(f"--{boundary}\r\n".encode())
        out.write(
            f'Content-Disposition: form-data; name="{index}"; filename="'.encode() + name + b'"\r\n'
        )
        out.write(f"Content-Type: {content_type}\r\n\r\n".encode() + content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


async def upload_raw(
    client: httpx.AsyncClient,
    token: str | None,
    document_id: str,
    content: bytes,
    filename: bytes | str = "file.pdf",
    *,
    content_type: str = "application/pdf",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    operations = {
        "query": UPLOAD,
        "variables": {"input": {"documentId": document_id, "file": None}},
    }
    body, multipart_type = multipart_body(operations, [(filename, content, content_type)])
    all_headers = {"content-type": multipart_type, **PREFLIGHT, **(headers or {})}
    if token:
        all_headers["authorization"] = f"Bearer {token}"
    return await client.post("/graphql", content=body, headers=all_headers)


async def upload(
    client: httpx.AsyncClient,
    token: str,
    document_id: str,
    content: bytes,
    filename: bytes | str = "file.pdf",
    **kwargs: Any,
) -> dict[str, Any]:
    """The uploadDocument payload (asserting a 200 without top-level errors)."""
    response = await upload_raw(client, token, document_id, content, filename, **kwargs)
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]["uploadDocument"]


async def review(
    client: httpx.AsyncClient,
    token: str,
    version_id: str,
    decision: str,
    reason: str | None = None,
    notes: str | None = None,
) -> dict[str, Any]:
    data = await gql(
        client,
        REVIEW,
        {
            "input": {
                "versionId": version_id,
                "decision": decision,
                "reason": reason,
                "notes": notes,
            }
        },
        token=token,
    )
    return data["reviewDocument"]


async def dossier_view(client: httpx.AsyncClient, token: str, dossier_id: Any) -> dict[str, Any]:
    return (await gql(client, DOSSIER, {"id": str(dossier_id)}, token=token))["dossier"]


# --- apps with other settings ---------------------------------------------------------


@asynccontextmanager
async def app_client(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on a second app instance of this run with some settings changed
    (same database, which the session fixture already opened)."""
    from app.main import create_app
    from app.settings import get_settings

    settings = get_settings().model_copy(update=overrides)
    app = create_app(settings, manage_db=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


# --- a real S3-compatible server: moto in server mode ---------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/moto-api/", timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def settings(self, bucket: str, prefix: str = "docs") -> dict[str, Any]:
        return {
            "storage_url": f"s3://{bucket}/{prefix}",
            "s3_endpoint_url": self.url,
            "s3_region": "us-east-1",
            "s3_access_key_id": "test",
            "s3_secret_access_key": "test",
        }
