"""Event sourcing: the products and reservations a change log describes.

Every event carries the whole product after the change (and, for stock
events, the reservation), so replaying is a fold. DELETED drops the product
and its reservations, as the database's ON DELETE CASCADE does.

Example::

    state = replay(events)
    state.products[pid].stock, state.reservations[rid].state
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from services.runtime.storage import in_revision_order
from switchboard.product.v1 import product_pb2

__all__ = ["ProductState", "replay"]

_ET = product_pb2.ProductEventType


@dataclass
class ProductState:
    """Products and reservations by id."""

    products: dict[str, product_pb2.Product] = field(default_factory=dict)
    reservations: dict[str, product_pb2.Reservation] = field(default_factory=dict)


def replay(events: Iterable[product_pb2.ProductEvent]) -> ProductState:
    """Apply ``events`` (in revision order) to an empty state and return it."""
    state = ProductState()
    for event in in_revision_order(events):
        _apply(state, event)
    return state


def _apply(state: ProductState, event: product_pb2.ProductEvent) -> None:
    product_id = event.product.id
    if event.type == _ET.PRODUCT_EVENT_TYPE_DELETED:
        state.products.pop(product_id, None)
        gone = [r for r, res in state.reservations.items() if res.product_id == product_id]
        for reservation_id in gone:
            del state.reservations[reservation_id]
        return
    state.products[product_id] = event.product
    if event.HasField("reservation"):
        state.reservations[event.reservation.id] = event.reservation
