"""Media files live in the media store (a directory), not in the database: an upload is
written there by content hash, whole or not at all, and streamed to the platform from it."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from reengage.adapters.db.models import Bot, MediaAsset
from reengage.adapters.media_store import DirectoryMediaStore
from reengage.ports import MediaTooLarge
from reengage.runtime import Runtime
from reengage.services.media import MAX_BYTES
from tests.e2e.harness import MODES, runtime_in_mode
from tests.e2e.shop import CAMPAIGN, Shop

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Runtime:
    return runtime_in_mode(request, tmp_path)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_an_upload_is_a_file_in_the_store_streamed_to_telegram(shop: Shop) -> None:
    root = shop.runtime.settings.media_path()
    r = shop.client.post(
        "/v1/media", headers=shop.headers, files={"file": ("promo.png", PNG, "image/png")}
    )
    assert r.status_code == 201, r.text
    digest = hashlib.sha256(PNG).hexdigest()
    assert r.json()["sha256"] == digest
    [stored] = _files(root)
    assert stored == root / digest[:2] / digest[2:4] / digest
    assert stored.read_bytes() == PNG
    with shop.runtime.sessions() as session:
        asset = session.get_one(MediaAsset, r.json()["id"])
        assert (asset.storage_key, asset.content) == (digest, None)  # no bytes in the row
    block = {"kind": "photo", "asset_id": r.json()["id"], "caption": "Promo"}
    shop.launch({**CAMPAIGN, "steps": [{"schedule": "30m", "blocks": [block]}]})
    shop.event("140")
    shop.wait(timedelta(minutes=41))
    [photo] = shop.fake.calls_to("sendPhoto")
    assert photo.files["photo"] == PNG
    assert shop.heard("140") == ["Promo"]


def test_a_file_over_50_mb_is_refused_and_leaves_nothing(shop: Shop) -> None:
    root = shop.runtime.settings.media_path()
    big = b"\0" * (MAX_BYTES + 1)
    r = shop.client.post(
        "/v1/media", headers=shop.headers, files={"file": ("big.bin", big, "video/mp4")}
    )
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "payload_too_large"
    assert _files(root) == []  # no partial file, no temporary one either
    with shop.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(MediaAsset)) == 0
    empty = shop.client.post(
        "/v1/media", headers=shop.headers, files={"file": ("e.png", b"", "image/png")}
    )
    assert empty.status_code == 422
    assert _files(root) == []


def test_the_directory_store_writes_whole_files_by_content_hash(tmp_path: Path) -> None:
    store = DirectoryMediaStore(tmp_path)
    first = store.put(io.BytesIO(PNG), len(PNG))
    again = store.put(io.BytesIO(PNG), len(PNG))
    assert first == again
    assert (first.size, first.sha256) == (len(PNG), hashlib.sha256(PNG).hexdigest())
    assert Path(store.path(first.key)).read_bytes() == PNG
    with pytest.raises(MediaTooLarge):
        store.put(io.BytesIO(b"x" * 10), 9)
    assert _files(tmp_path) == [Path(store.path(first.key))]
    with pytest.raises(ValueError, match="not a media key"):
        store.path("../../etc/passwd")


def test_an_asset_from_before_the_store_is_still_sent_from_its_row(
    shop: Shop, runtime: Runtime
) -> None:
    with runtime.sessions.begin() as session:
        asset = MediaAsset(
            org_id=session.get_one(Bot, shop.bot).org_id,
            filename="old.png",
            content_type="image/png",
            size=len(PNG),
            sha256=hashlib.sha256(PNG).hexdigest(),
            content=PNG,
            created_at=shop.clock.now(),
        )
        session.add(asset)
        session.flush()
        asset_id = asset.id
    block = {"kind": "photo", "asset_id": asset_id, "caption": "Old"}
    shop.launch({**CAMPAIGN, "steps": [{"schedule": "30m", "blocks": [block]}]})
    shop.event("141")
    shop.wait(timedelta(minutes=41))
    [photo] = shop.fake.calls_to("sendPhoto")
    assert photo.files["photo"] == PNG
    # Uploaded again: the bytes move to the store and leave the row.
    r = shop.client.post(
        "/v1/media", headers=shop.headers, files={"file": ("old.png", PNG, "image/png")}
    )
    assert r.json()["id"] == asset_id
    with runtime.sessions() as session:
        moved = session.get_one(MediaAsset, asset_id)
        assert (moved.storage_key, moved.content) == (hashlib.sha256(PNG).hexdigest(), None)
