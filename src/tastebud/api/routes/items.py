"""The item catalogue: ``PUT/GET/DELETE /v1/items/{item_id}``, ``POST /v1/items/batch`` and the
paginated listing ``GET /v1/items``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import ServicesDep, read_json, scoped
from tastebud.api.pagination import CursorQuery, LimitQuery, decode_cursor, encode_cursor
from tastebud.api.schemas import (
    ItemBatchOut,
    ItemOut,
    ItemPageOut,
    ItemPutOut,
    ItemResultOut,
    from_ms,
)
from tastebud.catalog import ItemIn, ItemRow
from tastebud.errors import InvalidInput, PayloadTooLarge, UnknownItem
from tastebud.events.fields import Id

__all__ = [
    "delete_item",
    "get_item",
    "list_items",
    "post_items",
    "put_item",
    "router",
]

router = APIRouter(tags=["items"])
ItemIdPath = Annotated[Id, Path(description="The item's id in your catalogue")]
CategoryQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$",
        description="Only items whose categories contain this one",
    ),
]


def _item_out(row: ItemRow) -> ItemOut:
    return ItemOut(
        item_id=row["item_id"],
        title=row["title"],
        category=row["category"],
        categories=row["categories"],
        type=row["item_type"],
        created_at=from_ms(row["created_ms"]),
        attributes=row["attributes"],
        hidden=row["hidden"],
        updated_at=from_ms(row["updated_ms"]),
    )


@router.get("/v1/items", response_model=ItemPageOut, **scoped("serve"))
def list_items(
    services: ServicesDep,
    category: CategoryQuery = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> ItemPageOut:
    """The catalogue a page at a time, in item-id order, hidden items included (flagged
    ``hidden``). Follow ``next_cursor`` until it is ``null``; a cursor only continues the
    listing (and ``category``) it came from."""
    scope = category or ""
    after = None
    if cursor is not None:
        (after,) = decode_cursor(services.pseudonymizer, "items", scope, cursor, (str,))
    page = services.catalog.items.browse(limit=limit, after=after, category=category)
    items = [_item_out(row) for row in page.entries]
    next_cursor = (
        encode_cursor(services.pseudonymizer, "items", scope, [items[-1].item_id])
        if page.more
        else None
    )
    return ItemPageOut(items=items, next_cursor=next_cursor)


@router.put(
    "/v1/items/{item_id}",
    response_model=ItemPutOut,
    responses={201: {"model": ItemPutOut, "description": "Created"}},
    **scoped("admin"),
)
def put_item(
    item_id: ItemIdPath, item: ItemIn, response: Response, services: ServicesDep
) -> ItemPutOut:
    """Create or replace a catalogue item (201 when created, 200 when replaced)."""
    created = services.catalog.put_item(item_id, item, services.now_ms())
    response.status_code = 201 if created else 200
    return ItemPutOut(item_id=item_id, created=created)


@router.get("/v1/items/{item_id}", response_model=ItemOut, **scoped("serve"))
def get_item(item_id: ItemIdPath, services: ServicesDep) -> ItemOut:
    """Read a catalogue item."""
    row = services.catalog.items.get(item_id)
    if row is None:
        raise UnknownItem("no item with this id is in the catalogue")
    return _item_out(row)


@router.delete("/v1/items/{item_id}", status_code=204, **scoped("admin"))
def delete_item(item_id: ItemIdPath, services: ServicesDep) -> Response:
    """Remove an item from the catalogue; events that mention it are kept."""
    if not services.catalog.items.delete(item_id):
        raise UnknownItem("no item with this id is in the catalogue")
    return Response(status_code=204)


@router.post(
    "/v1/items/batch",
    response_model=ItemBatchOut,
    **scoped(
        "admin",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["items"],
                            "properties": {
                                "items": {
                                    "type": "array",
                                    "maxItems": 1000,
                                    "items": {"$ref": "#/components/schemas/ItemBatchEntry"},
                                }
                            },
                        }
                    }
                },
            },
        },
    ),
)
async def post_items(request: Request, services: ServicesDep) -> ItemBatchOut:
    """Create or replace up to 1,000 items; each gets its own result and bad items never stop
    good ones."""
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise InvalidInput('the body must be {"items": [...]}')
    entries = body["items"]
    limit = services.settings.max_batch_events
    if len(entries) > limit:
        raise PayloadTooLarge(
            f"a batch holds at most {limit:,} items; this one has {len(entries):,}"
        )
    outcome = await run_in_threadpool(services.catalog.put_items, entries, services.now_ms())
    results = [
        ItemResultOut(item_id=r.id, status=r.status, reason=r.reason) for r in outcome.results
    ]
    return ItemBatchOut(
        created=sum(r.status == "created" for r in results),
        updated=sum(r.status == "updated" for r in results),
        rejected=sum(r.status == "rejected" for r in results),
        results=results,
    )
