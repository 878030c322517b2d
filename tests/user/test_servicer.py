"""UserService through a real in-process gRPC server: every RPC, every contract status."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from services.runtime import errors as e
from services.user import UserStore
from switchboard.user.v1 import user_pb2
from switchboard.user.v1 import user_service_pb2 as pb
from tests._support import failure
from tests.storage._backends import count
from tests.user._support import WAIT, create, new_user, read_event

if TYPE_CHECKING:
    from switchboard.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

ET = user_pb2.UserEventType


# --- CreateUser ---------------------------------------------------------------------


async def test_create_returns_the_user_with_server_fields(stub: UserServiceAsyncStub) -> None:
    user = await create(stub, "Ada@Example.com")
    assert len(user.id) == 32 and user.etag
    assert user.email == "Ada@Example.com"  # kept as given; compared case-insensitively
    assert user.create_time == user.update_time and user.create_time.seconds > 0


@pytest.mark.parametrize(
    "email",
    ["", "plain", "a@b", "a b@example.com", "a@-x.com", "a@ex..com", "@example.com",
     "a@example.com.", "x" * 65 + "@example.com", "a@" + "b" * 250 + ".com", "zoë@example.com"],
)  # fmt: skip
async def test_create_rejects_a_malformed_email(stub: UserServiceAsyncStub, email: str) -> None:
    request = pb.CreateUserRequest(user=new_user(email))
    error = await failure(stub.CreateUser(request, timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["user.email"]


@pytest.mark.parametrize("name", ["", "x" * 101, "tab\there", "line\nbreak", "nul\x00", "del\x7f"])
async def test_create_rejects_a_bad_display_name(stub: UserServiceAsyncStub, name: str) -> None:
    request = pb.CreateUserRequest(user=new_user(name=name))
    error = await failure(stub.CreateUser(request, timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["user.display_name"]


@pytest.mark.parametrize("name", ["x", "x" * 100, "Zoë 🙂 O'Brien-Łukasz"])
async def test_create_accepts_names_in_bounds(stub: UserServiceAsyncStub, name: str) -> None:
    request = pb.CreateUserRequest(user=new_user(name=name))
    assert (await stub.CreateUser(request, timeout=WAIT)).user.display_name == name


async def test_create_reports_every_bad_field(stub: UserServiceAsyncStub) -> None:
    request = pb.CreateUserRequest(user=new_user("nope", ""), request_id="r" * 65)
    error = await failure(stub.CreateUser(request, timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    fields = [v.field for v in error.violations]
    assert fields == ["user.email", "user.display_name", "request_id"]


async def test_create_with_a_taken_email_any_case_is_already_exists(
    stub: UserServiceAsyncStub,
) -> None:
    await create(stub, "ada@example.com")
    error = await failure(stub.CreateUser(pb.CreateUserRequest(user=new_user("ADA@example.COM"))))
    assert isinstance(error, e.AlreadyExists)
    assert error.resource_type == "switchboard.user.v1.User"
    assert error.resource_name == "ADA@example.COM"
    assert error.reason == "EMAIL_ALREADY_EXISTS"


async def test_create_retried_with_the_same_request_id_is_applied_once(
    stub: UserServiceAsyncStub, store: UserStore
) -> None:
    request = pb.CreateUserRequest(user=new_user(), request_id="create-1")
    first, second = [await stub.CreateUser(request, timeout=WAIT) for _ in range(2)]
    assert first == second
    assert (await count(store, "users"), await count(store, "events")) == (1, 1)


async def test_concurrent_retries_create_one_user(
    stub: UserServiceAsyncStub, store: UserStore
) -> None:
    request = pb.CreateUserRequest(user=new_user(), request_id="create-2")
    responses = await asyncio.gather(*(stub.CreateUser(request, timeout=WAIT) for _ in range(10)))
    assert len({r.user.id for r in responses}) == 1
    assert await count(store, "events") == 1


async def test_request_id_reused_for_another_user_is_invalid(stub: UserServiceAsyncStub) -> None:
    await create(stub, "a@example.com", request_id="same")
    error = await failure(create(stub, "b@example.com", request_id="same"))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["request_id"]


async def test_create_with_a_chosen_id(stub: UserServiceAsyncStub) -> None:
    request = pb.CreateUserRequest(user=new_user(), user_id="ada")
    user = (await stub.CreateUser(request, timeout=WAIT)).user
    assert user.id == "ada"
    assert (await stub.GetUser(pb.GetUserRequest(id="ada"), timeout=WAIT)).user == user


async def test_create_with_a_taken_id_is_already_exists_until_deleted(
    stub: UserServiceAsyncStub,
) -> None:
    await stub.CreateUser(pb.CreateUserRequest(user=new_user("a@x.io"), user_id="ada"))
    again = pb.CreateUserRequest(user=new_user("b@x.io"), user_id="ada")
    error = await failure(stub.CreateUser(again, timeout=WAIT))
    assert isinstance(error, e.AlreadyExists) and error.reason == "USER_ALREADY_EXISTS"
    assert error.resource_name == "ada"
    await stub.DeleteUser(pb.DeleteUserRequest(id="ada"), timeout=WAIT)
    assert (await stub.CreateUser(again, timeout=WAIT)).user.id == "ada"


@pytest.mark.parametrize("user_id", ["Ada", "-ada", "a_b", "a.b", "x" * 64, "zoë"])
async def test_create_with_a_malformed_chosen_id_is_invalid(
    stub: UserServiceAsyncStub, user_id: str
) -> None:
    request = pb.CreateUserRequest(user=new_user(), user_id=user_id)
    error = await failure(stub.CreateUser(request, timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["user_id"]


# --- GetUser ------------------------------------------------------------------------


async def test_get_returns_the_user(stub: UserServiceAsyncStub) -> None:
    user = await create(stub)
    assert (await stub.GetUser(pb.GetUserRequest(id=user.id), timeout=WAIT)).user == user


async def test_get_unknown_is_not_found(stub: UserServiceAsyncStub) -> None:
    error = await failure(stub.GetUser(pb.GetUserRequest(id="nobody"), timeout=WAIT))
    assert isinstance(error, e.NotFound)
    assert (error.resource_type, error.resource_name) == ("switchboard.user.v1.User", "nobody")


@pytest.mark.parametrize("user_id", ["", "x" * 65])
async def test_get_without_a_usable_id_is_invalid(stub: UserServiceAsyncStub, user_id: str) -> None:
    error = await failure(stub.GetUser(pb.GetUserRequest(id=user_id), timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["id"]


# --- ListUsers ----------------------------------------------------------------------


async def _list_all(stub: UserServiceAsyncStub, page_size: int) -> list[list[str]]:
    pages: list[list[str]] = []
    token = ""
    for _ in range(100):  # bounded: far more pages than any test makes
        response = await stub.ListUsers(
            pb.ListUsersRequest(page_size=page_size, page_token=token), timeout=WAIT
        )
        pages.append([u.id for u in response.users])
        token = response.next_page_token
        if not token:
            return pages
    raise AssertionError("paging did not end")


async def test_list_pages_through_every_user_in_id_order(stub: UserServiceAsyncStub) -> None:
    ids = sorted([(await create(stub, f"u{i}@example.com")).id for i in range(7)])
    pages = await _list_all(stub, page_size=3)
    assert pages == [ids[0:3], ids[3:6], ids[6:7]]


async def test_list_default_page_size_is_50(stub: UserServiceAsyncStub) -> None:
    for i in range(51):
        await create(stub, f"u{i}@example.com")
    response = await stub.ListUsers(pb.ListUsersRequest(), timeout=WAIT)
    assert len(response.users) == 50 and response.next_page_token


async def test_list_big_pages_come_from_the_reader_thread(stub: UserServiceAsyncStub) -> None:
    ids = sorted([(await create(stub, f"u{i}@example.com")).id for i in range(120)])
    assert await _list_all(stub, page_size=5000) == [ids]  # capped to 1000, above the inline limit


async def test_list_page_size_may_change_between_pages(stub: UserServiceAsyncStub) -> None:
    ids = sorted([(await create(stub, f"u{i}@example.com")).id for i in range(5)])
    first = await stub.ListUsers(pb.ListUsersRequest(page_size=2), timeout=WAIT)
    rest = await stub.ListUsers(
        pb.ListUsersRequest(page_size=10, page_token=first.next_page_token), timeout=WAIT
    )
    assert [u.id for u in rest.users] == ids[2:] and not rest.next_page_token


async def test_list_negative_page_size_is_invalid(stub: UserServiceAsyncStub) -> None:
    error = await failure(stub.ListUsers(pb.ListUsersRequest(page_size=-1), timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["page_size"]


@pytest.mark.parametrize("token", ["garbage", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "x" * 600])
async def test_list_forged_page_token_is_invalid(stub: UserServiceAsyncStub, token: str) -> None:
    error = await failure(stub.ListUsers(pb.ListUsersRequest(page_token=token), timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["page_token"]


# --- UpdateUser ---------------------------------------------------------------------


def _update(user: user_pb2.User, *paths: str, request_id: str = "") -> pb.UpdateUserRequest:
    return pb.UpdateUserRequest(
        user=user, update_mask=FieldMask(paths=list(paths)), request_id=request_id
    )


async def test_update_changes_only_the_masked_fields(stub: UserServiceAsyncStub) -> None:
    user = await create(stub)
    change = user_pb2.User(id=user.id, email="ignored@example.com", display_name="Countess")
    updated = (await stub.UpdateUser(_update(change, "display_name"), timeout=WAIT)).user
    assert (updated.email, updated.display_name) == (user.email, "Countess")
    assert updated.etag != user.etag
    assert updated.create_time == user.create_time
    assert updated.update_time.ToNanoseconds() >= user.update_time.ToNanoseconds()


async def test_update_email_and_keep_own_email_in_another_case(stub: UserServiceAsyncStub) -> None:
    user = await create(stub, "ada@example.com")
    change = user_pb2.User(id=user.id, email="ADA@example.com")
    assert (await stub.UpdateUser(_update(change, "email"))).user.email == "ADA@example.com"


async def test_update_with_the_current_etag_succeeds(stub: UserServiceAsyncStub) -> None:
    user = await create(stub)
    change = user_pb2.User(id=user.id, display_name="B", etag=user.etag)
    assert (await stub.UpdateUser(_update(change, "display_name"))).user.display_name == "B"


async def test_update_with_a_stale_etag_is_aborted(stub: UserServiceAsyncStub) -> None:
    user = await create(stub)
    await stub.UpdateUser(_update(user_pb2.User(id=user.id, display_name="B"), "display_name"))
    stale = user_pb2.User(id=user.id, display_name="C", etag=user.etag)
    error = await failure(stub.UpdateUser(_update(stale, "display_name"), timeout=WAIT))
    assert isinstance(error, e.Aborted) and error.reason == "ETAG_MISMATCH"


@pytest.mark.parametrize(
    ("paths", "why"),
    [((), "is required"), (("nickname",), "unknown path"), (("id",), "read-only"),
     (("etag",), "read-only"), (("*",), "unknown path")],
)  # fmt: skip
async def test_update_mask_must_name_updatable_fields(
    stub: UserServiceAsyncStub, paths: tuple[str, ...], why: str
) -> None:
    user = await create(stub)
    error = await failure(stub.UpdateUser(_update(user, *paths), timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["update_mask"]
    assert why in error.violations[0].description


async def test_update_checks_the_masked_values(stub: UserServiceAsyncStub) -> None:
    user = await create(stub)
    bad = user_pb2.User(id=user.id, email="bad", display_name="")
    error = await failure(stub.UpdateUser(_update(bad, "email", "display_name"), timeout=WAIT))
    assert isinstance(error, e.InvalidArgument)
    assert {v.field for v in error.violations} == {"user.email", "user.display_name"}
    # An unmasked bad value is ignored.
    fine = await stub.UpdateUser(_update(user_pb2.User(id=user.id, email="bad", display_name="Z"),
                                         "display_name"))  # fmt: skip
    assert fine.user.display_name == "Z"


async def test_update_unknown_user_is_not_found(stub: UserServiceAsyncStub) -> None:
    change = user_pb2.User(id="nobody", display_name="X")
    error = await failure(stub.UpdateUser(_update(change, "display_name"), timeout=WAIT))
    assert isinstance(error, e.NotFound)


async def test_update_to_a_taken_email_is_already_exists(stub: UserServiceAsyncStub) -> None:
    await create(stub, "taken@example.com")
    user = await create(stub, "mine@example.com")
    change = user_pb2.User(id=user.id, email="Taken@example.com")
    error = await failure(stub.UpdateUser(_update(change, "email"), timeout=WAIT))
    assert isinstance(error, e.AlreadyExists)


async def test_update_retried_with_the_same_request_id_is_applied_once(
    stub: UserServiceAsyncStub, store: UserStore
) -> None:
    user = await create(stub)
    request = _update(user_pb2.User(id=user.id, display_name="Once"), "display_name",
                      request_id="u-1")  # fmt: skip
    first, second = [await stub.UpdateUser(request, timeout=WAIT) for _ in range(2)]
    assert first == second
    assert await count(store, "events") == 2


# --- DeleteUser ---------------------------------------------------------------------


async def test_delete_removes_the_user_and_returns_its_revision(stub: UserServiceAsyncStub) -> None:
    user = await create(stub)
    deleted = await stub.DeleteUser(pb.DeleteUserRequest(id=user.id), timeout=WAIT)
    assert deleted.revision == 2
    error = await failure(stub.GetUser(pb.GetUserRequest(id=user.id), timeout=WAIT))
    assert isinstance(error, e.NotFound)


async def test_delete_unknown_is_not_found(stub: UserServiceAsyncStub) -> None:
    error = await failure(stub.DeleteUser(pb.DeleteUserRequest(id="nobody"), timeout=WAIT))
    assert isinstance(error, e.NotFound)


async def test_delete_with_a_stale_etag_is_aborted_and_keeps_the_user(
    stub: UserServiceAsyncStub,
) -> None:
    user = await create(stub)
    request = pb.DeleteUserRequest(id=user.id, etag="0000000000000000")
    assert isinstance(await failure(stub.DeleteUser(request, timeout=WAIT)), e.Aborted)
    assert (await stub.GetUser(pb.GetUserRequest(id=user.id), timeout=WAIT)).user == user
    await stub.DeleteUser(pb.DeleteUserRequest(id=user.id, etag=user.etag), timeout=WAIT)


async def test_delete_retried_with_the_same_request_id_succeeds_again(
    stub: UserServiceAsyncStub,
) -> None:
    user = await create(stub)
    request = pb.DeleteUserRequest(id=user.id, request_id="d-1")
    first, second = [await stub.DeleteUser(request, timeout=WAIT) for _ in range(2)]
    assert first == second


# --- WatchUsers ---------------------------------------------------------------------


async def test_watch_streams_history_then_live_changes(stub: UserServiceAsyncStub) -> None:
    user = await create(stub)
    watch = stub.WatchUsers(pb.WatchUsersRequest(start_revision=0))
    first = await read_event(watch)
    assert (first.event.revision, first.event.type) == (1, ET.USER_EVENT_TYPE_CREATED)
    assert first.event.user == user
    await stub.DeleteUser(pb.DeleteUserRequest(id=user.id), timeout=WAIT)
    live = await read_event(watch)
    assert (live.event.revision, live.event.type) == (2, ET.USER_EVENT_TYPE_DELETED)
    assert live.event.user.id == user.id
    watch.cancel()


async def test_watch_resumes_after_a_revision(stub: UserServiceAsyncStub) -> None:
    for i in range(3):
        await create(stub, f"u{i}@example.com")
    watch = stub.WatchUsers(pb.WatchUsersRequest(start_revision=2))
    resumed = await read_event(watch)
    assert resumed.event.revision == 3 and resumed.event.user.email == "u2@example.com"
    watch.cancel()


async def test_watch_negative_start_revision_is_invalid(stub: UserServiceAsyncStub) -> None:
    watch = stub.WatchUsers(pb.WatchUsersRequest(start_revision=-1))
    error = await failure(watch.read())
    assert isinstance(error, e.InvalidArgument)
    assert [v.field for v in error.violations] == ["start_revision"]


async def test_watch_ends_unavailable_when_the_server_stops(
    stub: UserServiceAsyncStub, store: UserStore
) -> None:
    watch = stub.WatchUsers(pb.WatchUsersRequest())
    waiting = asyncio.ensure_future(failure(watch.read()))
    await asyncio.sleep(0.05)  # let the stream reach its wait (its result is awaited below)
    store.end_watches()
    error = await asyncio.wait_for(waiting, WAIT)
    assert isinstance(error, e.Unavailable) and error.reason == "SHUTTING_DOWN"
