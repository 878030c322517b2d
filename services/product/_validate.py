"""Request validation for the product service: every bad field is reported.

Rules (from ``product.proto``):

- sku: 1 to 64 characters of letters, digits, ``-``, ``_`` and ``.``;
  unique, compared exactly (``A-1`` and ``a-1`` are two SKUs).
- name: 1 to 200 characters. description: at most 4000 characters.
- price: required; ``currency_code`` is an ISO 4217 code (three upper-case
  letters, from :data:`ISO_4217_CODES`); ``amount_minor`` is not negative.
- stock: not negative. seller_id: required (at most 64 characters); that
  the user exists is checked by the servicer through the user service.

Example::

    violations = Violations()
    check_product(violations, product, paths=ALL_PATHS)
    violations.raise_if_any("invalid CreateProduct request")
"""

from __future__ import annotations

import re

from services.product._currencies import ISO_4217_CODES
from services.runtime.validation import Violations, check_id
from switchboard.product.v1 import product_pb2

__all__ = [
    "ALL_PATHS",
    "MAX_DESCRIPTION",
    "MAX_NAME",
    "READ_ONLY_PATHS",
    "check_product",
]

MAX_NAME = 200
MAX_DESCRIPTION = 4000
ALL_PATHS = frozenset({"sku", "name", "description", "price", "stock", "seller_id"})
READ_ONLY_PATHS = frozenset({"id", "create_time", "update_time", "etag", "state"})

_SKU = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CURRENCY_SHAPE = re.compile(r"[A-Z]{3}")


def check_product(
    violations: Violations, product: product_pb2.Product, paths: frozenset[str]
) -> None:
    """Record every bad field of ``product`` among ``paths`` (all of them for a create)."""
    checks = {
        "sku": lambda: _check_sku(violations, product.sku),
        "name": lambda: _check_name(violations, product.name),
        "description": lambda: _check_description(violations, product.description),
        "price": lambda: _check_price(violations, product),
        "stock": lambda: _check_stock(violations, product.stock),
        "seller_id": lambda: check_id(violations, "product.seller_id", product.seller_id),
    }
    for path in sorted(paths & ALL_PATHS, key=list(checks).index):
        checks[path]()


def _check_sku(violations: Violations, sku: str) -> None:
    if not _SKU.fullmatch(sku):
        violations.add("product.sku", "must be 1 to 64 letters, digits, '-', '_' or '.'")


def _check_name(violations: Violations, name: str) -> None:
    if not 1 <= len(name) <= MAX_NAME:
        violations.add("product.name", f"must be 1 to {MAX_NAME} characters")


def _check_description(violations: Violations, description: str) -> None:
    if len(description) > MAX_DESCRIPTION:
        violations.add("product.description", f"must be at most {MAX_DESCRIPTION} characters")


def _check_price(violations: Violations, product: product_pb2.Product) -> None:
    if not product.HasField("price"):
        violations.add("product.price", "is required")
        return
    code = product.price.currency_code
    if not _CURRENCY_SHAPE.fullmatch(code):
        violations.add("product.price.currency_code", "must be three upper-case letters, e.g. EUR")
    elif code not in ISO_4217_CODES:
        violations.add("product.price.currency_code", f"{code!r} is not an ISO 4217 currency")
    if product.price.amount_minor < 0:
        violations.add("product.price.amount_minor", "must not be negative")


def _check_stock(violations: Violations, stock: int) -> None:
    if stock < 0:
        violations.add("product.stock", "must not be negative")
