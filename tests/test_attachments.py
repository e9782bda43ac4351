"""Uploaded files: checked by declared type and by content, limited in size, stored under an
id (never the client's name) in the tenant's folder, served only to the tenant's users."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from atiende.attachments import media
from atiende.attachments import service as attachments
from atiende.attachments.models import Attachment
from atiende.attachments.storage import LocalDiskStore, attachment_store, check_key
from atiende.core.config import Settings
from atiende.core.db import Database, Scope
from atiende.core.errors import ValidationFailed
from atiende.identity.models import Role
from factories import api_client, browser_login, caller, make_tenant, make_user
from tenancy_helpers import assert_tenant_isolation

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64


def _stored_files(settings: Settings) -> list[Path]:
    root = settings.data_dir / "attachments"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def _count_rows(db: Database, tenant_id) -> int:
    async with db.session(Scope.tenant(tenant_id)) as session:
        return int(await session.scalar(select(func.count()).select_from(Attachment)) or 0)


async def test_an_upload_is_kept_under_its_id_with_its_metadata(
    app, db: Database, settings: Settings
) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    response = await agent.client.post(
        "/api/v1/attachments", files={"file": ("foto perfil.png", PNG, "image/png")}
    )
    assert response.status_code == 201, response.text
    meta = response.json()
    assert meta["name"] == "foto perfil.png"
    assert meta["content_type"] == "image/png"
    assert meta["size"] == len(PNG)
    assert meta["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert meta["uploader_kind"] == "user"
    assert meta["uploader_id"] == str(agent.id)

    [stored] = _stored_files(settings)
    assert stored == (settings.data_dir / "attachments" / str(tenant.id) / meta["id"]).resolve()
    assert stored.read_bytes() == PNG


async def test_a_download_is_an_attachment_that_browsers_must_not_sniff(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    supervisor = await caller(app, tenant, Role.supervisor)
    meta = (
        await agent.client.post(
            "/api/v1/attachments", files={"file": ("Cotización.pdf", PDF, "application/pdf")}
        )
    ).json()
    response = await supervisor.client.get(f"/api/v1/attachments/{meta['id']}")
    assert response.status_code == 200
    assert response.content == PDF
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["x-content-type-options"] == "nosniff"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''Cotizaci%C3%B3n.pdf" in disposition
    assert 'filename="Cotizaci_n.pdf"' in disposition


async def test_a_renamed_executable_is_refused_and_nothing_is_stored(
    app, db: Database, settings: Settings
) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    for name, data, declared in (
        ("foto.png", EXE, "image/png"),
        ("doc.pdf", EXE, "application/pdf"),
        ("foto.jpg", PNG, "image/jpeg"),  # a PNG is not a JPEG either
        ("notas.txt", EXE, "text/plain"),
        ("setup.exe", EXE, "application/x-msdownload"),
        ("script.html", b"<script>alert(1)</script>", "text/html"),
        ("sin-tipo", PNG, "application/octet-stream"),
    ):
        response = await agent.client.post(
            "/api/v1/attachments", files={"file": (name, data, declared)}
        )
        assert response.status_code == 415, (name, response.text)
        assert response.json()["code"] == "unsupported_media_type"
    assert _stored_files(settings) == []
    assert await _count_rows(db, tenant.id) == 0


async def test_an_oversized_upload_is_refused_and_nothing_is_stored(
    app, db: Database, settings: Settings
) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    just_over = PNG + b"\x00" * (attachments.DEFAULT_MAX_BYTES + 1 - len(PNG))
    far_over = just_over + b"\x00" * (1024 * 1024)  # refused by its declared length
    for data in (just_over, far_over):
        response = await agent.client.post(
            "/api/v1/attachments", files={"file": ("big.png", data, "image/png")}
        )
        assert response.status_code == 413, response.text
        assert response.json()["code"] == "attachment_too_large"
        assert response.json()["details"]["max_bytes"] == attachments.DEFAULT_MAX_BYTES
    assert _stored_files(settings) == []
    assert await _count_rows(db, tenant.id) == 0


async def test_a_file_of_exactly_the_limit_is_accepted(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    exact = PNG + b"\x00" * (attachments.DEFAULT_MAX_BYTES - len(PNG))
    response = await agent.client.post(
        "/api/v1/attachments", files={"file": ("exact.png", exact, "image/png")}
    )
    assert response.status_code == 201, response.text
    assert response.json()["size"] == attachments.DEFAULT_MAX_BYTES


async def test_an_empty_or_missing_file_is_refused(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    empty = await agent.client.post(
        "/api/v1/attachments", files={"file": ("vacio.txt", b"", "text/plain")}
    )
    assert empty.status_code == 422
    assert empty.json()["code"] == "attachment_empty"
    missing = await agent.client.post("/api/v1/attachments", data={"other": "x"})
    assert missing.status_code == 422
    assert missing.json()["code"] == "validation_error"
    assert await _count_rows(db, tenant.id) == 0


async def test_the_clients_file_name_never_becomes_a_path(
    app, db: Database, settings: Settings
) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    response = await agent.client.post(
        "/api/v1/attachments",
        files={"file": ("../../../etc/passwd.txt", b"root:x:0:0", "text/plain; charset=utf-8")},
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "passwd.txt"
    assert response.json()["content_type"] == "text/plain"
    [stored] = _stored_files(settings)
    assert stored.parent == (settings.data_dir / "attachments" / str(tenant.id)).resolve()
    assert stored.name == response.json()["id"]


async def test_attachments_are_invisible_to_another_tenant(app, db: Database) -> None:
    acme, globex = await make_tenant(db), await make_tenant(db)
    owner, intruder = await caller(app, acme, Role.agent), await caller(app, globex)
    meta = (
        await owner.client.post("/api/v1/attachments", files={"file": ("a.png", PNG, "image/png")})
    ).json()
    await assert_tenant_isolation(
        owner=owner,
        intruder=intruder,
        item_path=f"/api/v1/attachments/{meta['id']}/meta",
        list_path=None,
        change=None,
        deletable=False,
    )
    download = await intruder.client.get(f"/api/v1/attachments/{meta['id']}")
    assert download.status_code == 404
    assert download.json()["code"] == "attachment_not_found"
    assert (await owner.client.get(f"/api/v1/attachments/{meta['id']}")).content == PNG


async def test_vendor_staff_and_anonymous_callers_get_no_files(app, db: Database) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    meta = (
        await agent.client.post("/api/v1/attachments", files={"file": ("a.png", PNG, "image/png")})
    ).json()
    vendor = await caller(app, None, Role.vendor_admin)
    assert (await vendor.client.get(f"/api/v1/attachments/{meta['id']}")).status_code == 403
    async with api_client(app) as anonymous:
        assert (await anonymous.get(f"/api/v1/attachments/{meta['id']}")).status_code == 401


async def test_a_browser_session_uploads_with_its_csrf_token(app, db: Database) -> None:
    tenant = await make_tenant(db)
    user = await make_user(db, tenant, Role.agent)
    async with api_client(app) as browser:
        csrf = await browser_login(browser, user.email)
        refused = await browser.post(
            "/api/v1/attachments", files={"file": ("a.png", PNG, "image/png")}
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == "csrf_failed"
        accepted = await browser.post(
            "/api/v1/attachments",
            files={"file": ("a.png", PNG, "image/png")},
            headers={"X-CSRF-Token": csrf},
        )
        assert accepted.status_code == 201, accepted.text


async def test_channel_edges_store_with_their_own_limits(db: Database, settings: Settings) -> None:
    """What the webchat visitor upload calls: the service with a widget's limits."""
    tenant = await make_tenant(db)
    blobs = attachment_store(settings)
    async with db.session(Scope.tenant(tenant.id)) as session:
        with pytest.raises(attachments.AttachmentTooLarge):
            await attachments.store(session, PNG, "a.png", "image/png", blobs=blobs, max_bytes=10)
        with pytest.raises(attachments.UnsupportedMediaType):
            await attachments.store(
                session, PDF, "a.pdf", "application/pdf", blobs=blobs, allowed_types={"image/png"}
            )
        stored = await attachments.store(
            session,
            PNG,
            "a.png",
            "image/png",
            blobs=blobs,
            allowed_types={"image/png"},
            uploader_kind="visitor",
        )
    async with db.session(Scope.tenant(tenant.id)) as session:
        meta, data = await attachments.open(session, stored.id, blobs=blobs)
    assert data == PNG
    assert meta.uploader_kind == "visitor"
    async with db.session(Scope.tenant(tenant.id)) as session:
        with pytest.raises(ValidationFailed):
            await attachments.get_many(session, [stored.id, uuid.UUID(int=1)])


async def test_a_row_whose_bytes_are_gone_answers_not_found(
    app, db: Database, settings: Settings
) -> None:
    tenant = await make_tenant(db)
    agent = await caller(app, tenant, Role.agent)
    meta = (
        await agent.client.post("/api/v1/attachments", files={"file": ("a.png", PNG, "image/png")})
    ).json()
    for path in _stored_files(settings):
        path.unlink()
    response = await agent.client.get(f"/api/v1/attachments/{meta['id']}")
    assert response.status_code == 404
    assert response.json()["code"] == "attachment_not_found"


# --- pure parts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("media_type", "head", "ok"),
    [
        ("image/png", PNG, True),
        ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF", True),
        ("image/gif", b"GIF89a\x01\x00", True),
        ("image/webp", b"RIFF\x24\x00\x00\x00WEBPVP8 ", True),
        ("application/pdf", PDF, True),
        ("audio/mpeg", b"ID3\x04\x00", True),
        ("audio/mpeg", b"\xff\xfb\x90\x64", True),
        ("audio/ogg", b"OggS\x00\x02", True),
        ("video/mp4", b"\x00\x00\x00\x18ftypmp42", True),
        ("text/plain", "¡Hola, qué tal!".encode(), True),
        ("image/png", EXE, False),
        ("image/gif", b"GIF90a", False),
        ("image/webp", b"RIFF\x24\x00\x00\x00AVI ", False),
        ("application/pdf", b"<html>", False),
        ("audio/ogg", EXE, False),
        ("video/mp4", EXE, False),
        ("text/plain", b"abc\x00def", False),
        ("application/zip", b"\x7fELF\x02\x01", False),
        ("application/zip", b"PK\x03\x04", True),
    ],
)
def test_content_must_match_the_declared_type(media_type: str, head: bytes, ok: bool) -> None:
    assert media.content_matches(media_type, head) is ok


@pytest.mark.parametrize(
    ("declared", "normalised"),
    [
        ("image/PNG", "image/png"),
        ("text/plain; charset=utf-8", "text/plain"),
        ("image/jpg", "image/jpeg"),
        ("audio/mp3", "audio/mpeg"),
        (None, ""),
    ],
)
def test_media_types_are_normalised(declared: str | None, normalised: str) -> None:
    assert media.normalise_media_type(declared) == normalised


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ana\\foto.png", "foto.png"),
        ("a\nb\rc\x00.txt", "abc.txt"),
        ("..", "attachment"),
        ("", "attachment"),
        (None, "attachment"),
        ("x" * 300 + ".pdf", "x" * 251 + ".pdf"),
    ],
)
def test_file_names_are_reduced_to_display_names(given: str | None, kept: str) -> None:
    assert media.safe_name(given) == kept


def test_the_content_disposition_quotes_nothing_dangerous() -> None:
    header = media.content_disposition('a"b;c\\d é.txt')
    assert header == (
        "attachment; filename=\"a_b_c_d _.txt\"; filename*=UTF-8''a%22b%3Bc%5Cd%20%C3%A9.txt"
    )


def test_the_local_store_accepts_only_its_own_keys(tmp_path: Path) -> None:
    store = LocalDiskStore(tmp_path)
    for key in ("../x", "a/b", "/etc/passwd", "00000000-0000-0000-0000-000000000000/../x"):
        with pytest.raises(ValueError, match="not an attachment key"):
            store.path_of(key)
    key = "00000000-0000-0000-0000-000000000001/00000000-0000-0000-0000-000000000002"
    assert check_key(key) == key
    assert store.path_of(key) == tmp_path / key


async def test_the_local_store_writes_reads_and_deletes(tmp_path: Path) -> None:
    store = LocalDiskStore(tmp_path)
    key = "00000000-0000-0000-0000-000000000001/00000000-0000-0000-0000-000000000002"
    await store.put(key, b"data")
    assert await store.get(key) == b"data"
    assert [p.name for p in (tmp_path / key).parent.iterdir()] == [key.split("/")[1]]
    await store.delete(key)
    await store.delete(key)  # already gone: no error
    assert not (tmp_path / key).exists()
