"""The S3 attachment store, against a real S3-compatible server on the loopback (moto's):
the same put/get/delete behaviour as the local disk, private and optionally encrypted
objects under the configured prefix, one client per store, and the attachments API working
end to end with ``ATIENDE_ATTACHMENT_STORE=s3``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer
from pydantic import ValidationError

from atiende.attachments.storage import (
    BlobMissing,
    LocalDiskStore,
    S3Config,
    S3Store,
    attachment_store,
    close_attachment_store,
)
from atiende.core.clock import TestClock
from atiende.core.config import Settings
from atiende.identity.models import Role
from atiende.web.app import create_app
from factories import caller, make_tenant, running

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"
KEY = "00000000-0000-0000-0000-000000000001/00000000-0000-0000-0000-000000000002"
OTHER_KEY = "00000000-0000-0000-0000-000000000001/00000000-0000-0000-0000-000000000003"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
async def s3(s3_endpoint: str) -> AsyncIterator[S3Client]:
    """A client of our own, to look at the bucket behind the store's back."""
    async with get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=s3_endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        yield client


@pytest.fixture
async def bucket(s3: S3Client) -> str:
    name = f"atiende-{uuid.uuid4().hex[:16]}"
    await s3.create_bucket(Bucket=name)
    return name


def s3_settings(endpoint: str, bucket: str, **fields: Any) -> Settings:
    values: dict[str, Any] = {
        "attachment_store": "s3",
        "s3_bucket": bucket,
        "s3_endpoint_url": endpoint,
        "s3_access_key_id": ACCESS_KEY,
        "s3_secret_access_key": SECRET_KEY,
        **fields,
    }
    return Settings(**values)


@pytest.fixture
async def store(s3_endpoint: str, bucket: str, tmp_path: Path) -> AsyncIterator[S3Store]:
    settings = s3_settings(s3_endpoint, bucket, data_dir=tmp_path)
    chosen = attachment_store(settings)
    assert isinstance(chosen, S3Store)
    yield chosen
    await close_attachment_store(settings)


async def _keys(s3: S3Client, bucket: str) -> list[str]:
    listed = await s3.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


# --- the store ----------------------------------------------------------------------------------


async def test_bytes_put_come_back_from_the_object_under_the_prefix(
    store: S3Store, s3: S3Client, bucket: str
) -> None:
    await store.put(KEY, PNG)
    assert await store.get(KEY) == PNG
    assert await _keys(s3, bucket) == [f"attachments/{KEY}"]
    head = await s3.head_object(Bucket=bucket, Key=f"attachments/{KEY}")
    assert head["ContentLength"] == len(PNG)
    await store.put(KEY, PDF)  # a second put replaces the object whole
    assert await store.get(KEY) == PDF


async def test_a_missing_object_is_blob_missing(store: S3Store) -> None:
    await store.put(OTHER_KEY, PNG)
    with pytest.raises(BlobMissing):
        await store.get(KEY)


async def test_deleting_removes_the_object_and_deleting_again_is_fine(
    store: S3Store, s3: S3Client, bucket: str
) -> None:
    await store.put(KEY, PNG)
    await store.put(OTHER_KEY, PDF)
    await store.delete(KEY)
    await store.delete(KEY)  # already gone: no error
    with pytest.raises(BlobMissing):
        await store.get(KEY)
    assert await _keys(s3, bucket) == [f"attachments/{OTHER_KEY}"]


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "a/b",
        "/etc/passwd",
        f"{KEY}/extra",
        "00000000-0000-0000-0000-000000000000/../x",
        "00000000-0000-0000-0000-00000000000A/00000000-0000-0000-0000-000000000002",
    ],
)
async def test_the_s3_store_accepts_only_attachment_keys(
    store: S3Store, s3: S3Client, bucket: str, key: str
) -> None:
    with pytest.raises(ValueError, match="not an attachment key"):
        await store.put(key, PNG)
    with pytest.raises(ValueError, match="not an attachment key"):
        await store.get(key)
    with pytest.raises(ValueError, match="not an attachment key"):
        await store.delete(key)
    assert await _keys(s3, bucket) == []


async def test_objects_are_private_to_the_buckets_owner(
    store: S3Store, s3: S3Client, bucket: str, s3_endpoint: str
) -> None:
    import httpx

    await store.put(KEY, PNG)
    acl = await s3.get_object_acl(Bucket=bucket, Key=f"attachments/{KEY}")
    assert [grant["Permission"] for grant in acl["Grants"]] == ["FULL_CONTROL"]
    assert acl["Grants"][0]["Grantee"]["ID"] == acl["Owner"]["ID"]
    async with httpx.AsyncClient() as anonymous:
        response = await anonymous.get(f"{s3_endpoint}/{bucket}/attachments/{KEY}")
    assert response.status_code == 403


@pytest.mark.parametrize(("encrypt", "expected"), [(True, "AES256"), (False, None)])
async def test_server_side_encryption_is_asked_for_when_configured(
    s3_endpoint: str, s3: S3Client, bucket: str, encrypt: bool, expected: str | None
) -> None:
    store = S3Store(
        S3Config(
            bucket=bucket,
            endpoint_url=s3_endpoint,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            server_side_encryption=encrypt,
        )
    )
    try:
        await store.put(KEY, PNG)
    finally:
        await store.close()
    head = await s3.head_object(Bucket=bucket, Key=f"attachments/{KEY}")
    assert head.get("ServerSideEncryption") == expected


@pytest.mark.parametrize(
    ("prefix", "object_key"), [("tenants/files/", f"tenants/files/{KEY}"), ("", KEY)]
)
async def test_the_prefix_is_where_objects_go(
    s3_endpoint: str, s3: S3Client, bucket: str, prefix: str, object_key: str
) -> None:
    settings = s3_settings(s3_endpoint, bucket, s3_prefix=prefix)
    try:
        await attachment_store(settings).put(KEY, PNG)
    finally:
        await close_attachment_store(settings)
    assert await _keys(s3, bucket) == [object_key]


async def test_one_client_serves_every_call_until_closed(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    create_client = store._session.create_client

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(args[0])
        return create_client(*args, **kwargs)

    monkeypatch.setattr(store._session, "create_client", counting)
    await store.put(KEY, PNG)
    await store.get(KEY)
    await store.delete(OTHER_KEY)
    assert opened == ["s3"]
    assert store.connected
    await store.close()
    assert not store.connected
    assert await store.get(KEY) == PNG  # reopens on use
    assert opened == ["s3", "s3"]


# --- choosing the store -------------------------------------------------------------------------


def test_equal_settings_share_one_store(tmp_path: Path) -> None:
    first = s3_settings("http://127.0.0.1:9", "shared-bucket", data_dir=tmp_path)
    second = s3_settings("http://127.0.0.1:9", "shared-bucket", data_dir=tmp_path / "other")
    other_bucket = s3_settings("http://127.0.0.1:9", "another-bucket", data_dir=tmp_path)
    assert attachment_store(first) is attachment_store(second)
    assert attachment_store(first) is not attachment_store(other_bucket)


def test_the_local_disk_is_the_default(tmp_path: Path) -> None:
    store = attachment_store(Settings(data_dir=tmp_path))
    assert isinstance(store, LocalDiskStore)
    assert store.root == (tmp_path / "attachments").resolve()


def test_s3_without_a_bucket_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="ATIENDE_S3_BUCKET"):
        Settings(data_dir=tmp_path, attachment_store="s3")


def test_s3_settings_are_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATIENDE_ATTACHMENT_STORE", "s3")
    monkeypatch.setenv("ATIENDE_S3_BUCKET", "atiende-files")
    monkeypatch.setenv("ATIENDE_S3_ENDPOINT_URL", "http://minio.internal:9000")
    monkeypatch.setenv("ATIENDE_S3_REGION", "eu-west-1")
    monkeypatch.setenv("ATIENDE_S3_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("ATIENDE_S3_SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.setenv("ATIENDE_S3_PREFIX", "prod/attachments/")
    config = S3Config.from_settings(Settings(data_dir=tmp_path))
    assert config == S3Config(
        bucket="atiende-files",
        prefix="prod/attachments/",
        region="eu-west-1",
        endpoint_url="http://minio.internal:9000",
        access_key_id="id",
        secret_access_key="s3cr3t-value",
        server_side_encryption=False,
    )
    assert "s3cr3t-value" not in repr(config)


def test_half_a_key_pair_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="ATIENDE_S3_SECRET_ACCESS_KEY"):
        Settings(data_dir=tmp_path, s3_bucket="files", s3_access_key_id="id")


@pytest.mark.parametrize("prefix", ["/attachments/", "attachments", "a//b/", "../"])
def test_a_prefix_must_be_folder_names_each_ending_in_a_slash(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ValidationError, match="s3_prefix"):
        Settings(data_dir=tmp_path, s3_prefix=prefix)


@pytest.mark.parametrize(
    ("endpoint", "setting", "encrypted"),
    [
        (None, None, True),  # AWS: SSE-S3 by default
        ("http://minio.internal:9000", None, False),  # an S3-compatible service: off
        ("http://minio.internal:9000", True, True),
        (None, False, False),
    ],
)
def test_server_side_encryption_defaults_to_on_for_aws_only(
    tmp_path: Path, endpoint: str | None, setting: bool | None, encrypted: bool
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        attachment_store="s3",
        s3_bucket="files",
        s3_endpoint_url=endpoint,
        s3_server_side_encryption=setting,
    )
    assert S3Config.from_settings(settings).server_side_encryption is encrypted


# --- the attachments API on S3 ------------------------------------------------------------------


@pytest.fixture
async def s3_app(
    settings: Settings, clock: TestClock, s3_endpoint: str, bucket: str
) -> AsyncIterator[Any]:
    configured = s3_settings(s3_endpoint, bucket, **settings.model_dump(exclude_unset=True))
    application = create_app(configured, clock=clock, run_worker=False)
    async with running(application):
        yield application


async def test_an_upload_goes_to_the_bucket_and_downloads_back(
    s3_app: Any, settings: Settings, s3: S3Client, bucket: str
) -> None:
    tenant = await make_tenant(s3_app.state.atiende.db)
    agent = await caller(s3_app, tenant, Role.agent)
    supervisor = await caller(s3_app, tenant, Role.supervisor)
    response = await agent.client.post(
        "/api/v1/attachments", files={"file": ("factura.pdf", PDF, "application/pdf")}
    )
    assert response.status_code == 201, response.text
    meta = response.json()
    assert await _keys(s3, bucket) == [f"attachments/{tenant.id}/{meta['id']}"]
    assert not (settings.data_dir / "attachments").exists()

    download = await supervisor.client.get(f"/api/v1/attachments/{meta['id']}")
    assert download.status_code == 200
    assert download.content == PDF
    assert download.headers["content-type"] == "application/pdf"


async def test_a_refused_upload_writes_nothing_to_the_bucket(
    s3_app: Any, s3: S3Client, bucket: str
) -> None:
    tenant = await make_tenant(s3_app.state.atiende.db)
    agent = await caller(s3_app, tenant, Role.agent)
    response = await agent.client.post(
        "/api/v1/attachments", files={"file": ("foto.png", EXE, "image/png")}
    )
    assert response.status_code == 415
    assert await _keys(s3, bucket) == []


async def test_an_object_gone_from_the_bucket_answers_not_found(
    s3_app: Any, s3: S3Client, bucket: str
) -> None:
    tenant = await make_tenant(s3_app.state.atiende.db)
    agent = await caller(s3_app, tenant, Role.agent)
    meta = (
        await agent.client.post("/api/v1/attachments", files={"file": ("a.png", PNG, "image/png")})
    ).json()
    await s3.delete_object(Bucket=bucket, Key=f"attachments/{tenant.id}/{meta['id']}")
    response = await agent.client.get(f"/api/v1/attachments/{meta['id']}")
    assert response.status_code == 404
    assert response.json()["code"] == "attachment_not_found"


async def test_the_app_releases_the_stores_client_when_it_stops(
    settings: Settings, clock: TestClock, s3_endpoint: str, bucket: str
) -> None:
    configured = s3_settings(s3_endpoint, bucket, **settings.model_dump(exclude_unset=True))
    application = create_app(configured, clock=clock, run_worker=False)
    store = attachment_store(configured)
    assert isinstance(store, S3Store)
    async with running(application):
        tenant = await make_tenant(application.state.atiende.db)
        agent = await caller(application, tenant, Role.agent)
        response = await agent.client.post(
            "/api/v1/attachments", files={"file": ("a.png", PNG, "image/png")}
        )
        assert response.status_code == 201
        assert store.connected
    assert not store.connected
