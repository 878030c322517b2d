"""PostgreSQL backend: what several instances on one database rely on.

"Two instances" here are two stores on the same database, each with its own
connection pool and listener (as two processes have); the process-level
checks (``python -m services.product --database-url``) are at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import grpc.aio
import pytest

from harness import Launcher, PostgresServer, StartProcess, shared_postgres
from services.product import ProductStore
from services.runtime import errors as e
from services.runtime.storage import RequestKey
from services.user import MIGRATIONS as USER_MIGRATIONS
from services.user import UserStore
from switchboard.product.v1 import product_pb2, product_service_pb2_grpc
from switchboard.product.v1 import product_service_pb2 as ppb
from switchboard.user.v1 import user_pb2, user_service_pb2_grpc
from switchboard.user.v1 import user_service_pb2 as upb
from tests._support import failure
from tests.storage._backends import count, log, rows

WAIT = 10.0
"""Bound on every single wait in these tests (seconds)."""


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    return shared_postgres()


@pytest.fixture
def url(postgres: PostgresServer) -> str:
    return postgres.create_database()


@pytest.fixture
def two_users(url: str) -> Iterator[tuple[UserStore, UserStore]]:
    first, second = UserStore.open(url), UserStore.open(url)
    yield first, second
    first.close()
    second.close()


def _user(n: int) -> user_pb2.User:
    return user_pb2.User(email=f"u{n}@example.com", display_name=f"U{n}")


async def _create(store: UserStore, n: int, request_id: str = "") -> upb.CreateUserResponse:
    request = upb.CreateUserRequest(user=_user(n), request_id=request_id)
    key = RequestKey.of("CreateUser", request_id, request)
    return await store.create(request.user, "", key, upb.CreateUserResponse)


async def _collect(store: UserStore, n: int) -> list[int]:
    """The revisions of the first ``n`` events a watch from 0 on ``store`` delivers."""
    seen: list[int] = []
    async with asyncio.timeout(WAIT * 3):
        async for event in store.watch_events(0):
            seen.append(event.revision)
            if len(seen) == n:
                break
    return seen


async def test_concurrent_writers_on_two_instances_commit_gap_free_in_revision_order(
    two_users: tuple[UserStore, UserStore],
) -> None:
    first, second = two_users
    writes = 60
    watchers = [asyncio.create_task(_collect(store, writes)) for store in two_users]
    await asyncio.sleep(0)  # the watches start before the writes
    stores = [first, second] * (writes // 2)
    await asyncio.gather(*(_create(store, n) for n, store in enumerate(stores)))
    expected = list(range(1, writes + 1))
    assert [entry.revision for entry in await log(first)] == expected
    # Every watcher, on either instance, saw every change once, in revision order.
    assert [await w for w in watchers] == [expected, expected]


async def test_each_event_commits_with_its_change(two_users: tuple[UserStore, UserStore]) -> None:
    first, second = two_users
    created = (await _create(first, 1)).user
    with pytest.raises(e.AlreadyExists):
        await _create(second, 1)  # the same email: refused, leaves no event
    assert await count(second, "users") == 1 and await count(second, "events") == 1
    assert await rows(second, "SELECT revision FROM revision_counter") == [(1,)]
    assert (await second.get(created.id)) == created


async def test_a_retried_request_id_on_the_other_instance_returns_the_first_result(
    two_users: tuple[UserStore, UserStore],
) -> None:
    first, second = two_users
    answer = await _create(first, 1, request_id="r-1")
    assert await _create(second, 1, request_id="r-1") == answer
    assert await count(second, "events") == 1
    with pytest.raises(e.InvalidArgument) as reused:
        await _create(second, 2, request_id="r-1")
    assert reused.value.reason == "REQUEST_ID_REUSED"


async def test_reserves_through_two_instances_never_oversell(url: str) -> None:
    first, second = ProductStore.open(url), ProductStore.open(url)
    try:
        product = product_pb2.Product(sku="S-1", name="S", stock=10, seller_id="s")
        product.price.currency_code, product.price.amount_minor = "EUR", 100
        created = await first.create(product, "", None, ppb.CreateProductResponse)
        pid = created.product.id

        async def reserve(store: ProductStore, n: int) -> bool:
            request = ppb.ReserveStockRequest(product_id=pid, quantity=1, request_id=f"r{n}")
            try:
                await store.reserve_stock(pid, 1, RequestKey.of("ReserveStock", f"r{n}", request))
            except e.FailedPrecondition as err:
                assert err.reason == "INSUFFICIENT_STOCK"
                return False
            return True

        results = await asyncio.gather(*(reserve((first, second)[n % 2], n) for n in range(30)))
        assert sum(results) == 10
        assert (await second.get(pid)).stock == 0
        assert await count(first, "reservations") == 10
        # Retrying the winners through the other instance reserves nothing more.
        again = await asyncio.gather(*(reserve((second, first)[n % 2], n) for n in range(30)))
        assert again == results and (await first.get(pid)).stock == 0
    finally:
        first.close()
        second.close()


def test_migrations_run_once_when_instances_start_together(url: str) -> None:
    opened: list[UserStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait(timeout=WAIT)
        try:
            opened.append(UserStore.open(url))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT * 3)
    try:
        assert errors == [] and len(opened) == 4

        async def version() -> list[tuple[object, ...]]:
            return await rows(opened[0], "SELECT version FROM schema_version")

        assert asyncio.run(version()) == [(USER_MIGRATIONS[-1].version,)]
    finally:
        for store in opened:
            store.close()


# --- faults -------------------------------------------------------------------------


async def test_killed_and_restarted_postgres_costs_unavailable_and_no_acknowledged_write(
    postgres: PostgresServer, url: str
) -> None:
    store = UserStore.open(url)
    acknowledged: list[str] = []
    failures: list[BaseException] = []
    twenty = asyncio.Event()
    try:

        async def writer(worker: int) -> None:
            for n in range(60):
                try:
                    acknowledged.append((await _create(store, worker * 1000 + n)).user.id)
                    if len(acknowledged) >= 20:
                        twenty.set()
                except Exception as err:  # noqa: BLE001 - each kind is checked below
                    failures.append(err)

        writers = [asyncio.create_task(writer(w)) for w in range(3)]
        await asyncio.wait_for(twenty.wait(), WAIT)
        await asyncio.to_thread(postgres.kill)
        await asyncio.sleep(0.3)  # calls made while it is down fail fast
        await asyncio.to_thread(postgres.start)
        async with asyncio.timeout(WAIT * 6):
            await asyncio.gather(*writers)
        assert all(isinstance(f, e.Unavailable) for f in failures), failures
        assert failures, "the outage cost no call: the test did not hit it"
        # The pool reconnected by itself, and every acknowledged write is there.
        listed = await store.list(None, 1000)
        assert set(acknowledged) <= {user.id for user in listed.items}
        assert len(acknowledged) + len(failures) == 180
    finally:
        store.close()


# --- processes ----------------------------------------------------------------------


@pytest.fixture
def start_process(launcher: Launcher) -> StartProcess:
    return launcher.start


async def test_two_product_processes_on_one_database_share_stock_and_request_ids(
    url: str, start_process: StartProcess
) -> None:
    user_a = await start_process("services.user", "--database-url", url)
    env = {"SWITCHBOARD_ADDRESSES_USER": user_a.address}
    products = [
        await start_process("services.product", "--database-url", url, env=env) for _ in range(2)
    ]
    async with contextlib.AsyncExitStack() as stack:
        stubs = []
        for process in products:
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(process.address))
            stubs.append(product_service_pb2_grpc.ProductServiceStub(channel))
        async with grpc.aio.insecure_channel(user_a.address) as user_channel:
            users = user_service_pb2_grpc.UserServiceStub(user_channel)
            seller = (
                await users.CreateUser(upb.CreateUserRequest(user=_user(1)), timeout=WAIT)
            ).user
        product = product_pb2.Product(sku="P-1", name="P", stock=5, seller_id=seller.id)
        product.price.currency_code, product.price.amount_minor = "EUR", 1
        create = ppb.CreateProductRequest(product=product, request_id="c-1")
        first = await stubs[0].CreateProduct(create, timeout=WAIT)
        assert await stubs[1].CreateProduct(create, timeout=WAIT) == first  # shared request ids
        pid = first.product.id

        async def reserve(n: int) -> bool:
            request = ppb.ReserveStockRequest(product_id=pid, quantity=1, request_id=f"r{n}")
            try:
                await stubs[n % 2].ReserveStock(request, timeout=WAIT)
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
                return False
            return True

        assert sum(await asyncio.gather(*(reserve(n) for n in range(16)))) == 5
        got = await stubs[1].GetProduct(ppb.GetProductRequest(id=pid), timeout=WAIT)
        assert got.product.stock == 0
        missing = await failure(stubs[0].GetProduct(ppb.GetProductRequest(id="nope"), timeout=WAIT))
        assert isinstance(missing, e.NotFound)
