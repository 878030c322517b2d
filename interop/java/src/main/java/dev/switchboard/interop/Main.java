package dev.switchboard.interop;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.ResourceInfo;
import dev.switchboard.user.v1.CreateUserRequest;
import dev.switchboard.user.v1.GetUserRequest;
import dev.switchboard.user.v1.ListUsersRequest;
import dev.switchboard.user.v1.ListUsersResponse;
import dev.switchboard.user.v1.User;
import dev.switchboard.user.v1.UserEvent;
import dev.switchboard.user.v1.UserEventType;
import dev.switchboard.user.v1.UserServiceGrpc;
import dev.switchboard.user.v1.WatchUsersRequest;
import dev.switchboard.user.v1.WatchUsersResponse;
import io.grpc.Context;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * Calls Switchboard's user service with the grpc-java stubs generated from protos/ (make
 * stubs; the dev.switchboard:switchboard-contracts artifact), to show that the contracts work
 * from another language.
 *
 * <p>Runs the same checks as interop/go and interop/ts, prints "PASS name: detail" or "FAIL
 * name: reason" for each and a final "ALL CHECKS PASSED (n)" line; exits 0 only when every
 * check holds (1 when one fails, 2 on bad usage). Every run uses fresh emails and ids.
 */
public final class Main {
  static final String USAGE =
      String.join(
          "\n",
          "usage: interop-java USER_HOST:PORT",
          "",
          "Runs Switchboard's interop checks against the user service at USER_HOST:PORT.",
          "Prints \"PASS name: detail\" or \"FAIL name: reason\" per check; exits 0 when every",
          "check passes, 1 when one fails, 2 on bad usage.");

  private static final long CALL_TIMEOUT_S = 5; // per unary call
  private static final long WATCH_TIMEOUT_S = 5; // how long WatchUsers may take to show ours
  private static final int MAX_PAGES = 10_000; // bound on the ListUsers loop
  private static final int PAGE_SIZE = 2;
  private static final int LISTED_USERS = 3; // users of this run the paging check must see

  private final UserServiceGrpc.UserServiceBlockingStub users;
  private final String runId = Long.toHexString(System.nanoTime());
  private final List<User> created = new ArrayList<>();

  private Main(ManagedChannel channel) {
    this.users = UserServiceGrpc.newBlockingStub(channel);
  }

  public static void main(String[] args) throws InterruptedException {
    if (args.length == 1 && (args[0].equals("--help") || args[0].equals("-h"))) {
      System.out.println(USAGE);
      return;
    }
    if (args.length != 1 || args[0].startsWith("-")) {
      System.err.println(USAGE);
      System.exit(2);
    }
    ManagedChannel channel =
        Grpc.newChannelBuilder(args[0], InsecureChannelCredentials.create()).build();
    int code;
    try {
      code = new Main(channel).runAll();
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    System.exit(code);
  }

  /** One named assertion: returns a detail to print, or throws why it failed. */
  private interface Check {
    String run() throws Exception;
  }

  private Map<String, Check> checks() {
    Map<String, Check> checks = new LinkedHashMap<>();
    checks.put("create-user", this::createUser);
    checks.put("get-user", this::getUser);
    checks.put("create-user-with-id", this::createUserWithId);
    checks.put("list-users-paged", this::listUsersPaged);
    checks.put("not-found", this::notFound);
    checks.put("invalid-argument", this::invalidArgument);
    checks.put("watch-users", this::watchUsers);
    return checks;
  }

  /** Runs every check in order (a failed one does not hide the others); the exit code. */
  private int runAll() {
    Map<String, Check> checks = checks();
    int failed = 0;
    for (Map.Entry<String, Check> check : checks.entrySet()) {
      try {
        System.out.println("PASS " + check.getKey() + ": " + check.getValue().run());
      } catch (StatusRuntimeException e) {
        System.out.println("FAIL " + check.getKey() + ": " + describe(e.getStatus()));
        failed++;
      } catch (Exception e) {
        System.out.println("FAIL " + check.getKey() + ": " + e.getMessage());
        failed++;
      }
    }
    System.out.println(
        failed == 0
            ? "ALL CHECKS PASSED (" + checks.size() + ")"
            : failed + " OF " + checks.size() + " CHECKS FAILED");
    return failed == 0 ? 0 : 1;
  }

  private UserServiceGrpc.UserServiceBlockingStub stub() {
    return users.withDeadlineAfter(CALL_TIMEOUT_S, TimeUnit.SECONDS);
  }

  private String email(int i) {
    return "interop-java-" + runId + "-" + i + "@example.com";
  }

  /** The user of the create-user check, which later checks read back. */
  private User first() {
    if (created.isEmpty()) {
      throw new IllegalStateException("needs the user of create-user, which failed");
    }
    return created.get(0);
  }

  private User create(CreateUserRequest request) {
    return stub().createUser(request).getUser();
  }

  private String createUser() {
    User want = User.newBuilder().setEmail(email(0)).setDisplayName("Interop Java 0").build();
    User got =
        create(CreateUserRequest.newBuilder().setUser(want).setRequestId("java-" + runId).build());
    if (got.getId().isEmpty()
        || !got.getEmail().equals(want.getEmail())
        || !got.getDisplayName().equals(want.getDisplayName())) {
      throw new IllegalStateException("created user does not match the request: " + got);
    }
    if (!got.hasCreateTime() || got.getEtag().isEmpty()) {
      throw new IllegalStateException("created user lacks create_time or etag: " + got);
    }
    created.add(got);
    return "id=" + got.getId() + " email=" + got.getEmail();
  }

  private String getUser() {
    User want = first();
    User got = stub().getUser(GetUserRequest.newBuilder().setId(want.getId()).build()).getUser();
    if (!got.equals(want)) {
      throw new IllegalStateException("GetUser returned " + got + ", CreateUser returned " + want);
    }
    return "id=" + got.getId() + ": every field equals CreateUser's answer";
  }

  /** A user with an id chosen by the client (CreateUserRequest.user_id, AIP-133). */
  private String createUserWithId() {
    String id = "java-" + runId;
    User user = User.newBuilder().setEmail(email(1)).setDisplayName("Interop Java chosen id").build();
    User got = create(CreateUserRequest.newBuilder().setUser(user).setUserId(id).build());
    if (!got.getId().equals(id)) {
      throw new IllegalStateException("asked for user_id \"" + id + "\", got id \"" + got.getId() + "\"");
    }
    created.add(got);
    return "id=" + id;
  }

  /** Pages through every user, two at a time, after making sure this run's users exist. */
  private String listUsersPaged() {
    for (int i = created.size(); i < LISTED_USERS; i++) {
      User user =
          User.newBuilder().setEmail(email(10 + i)).setDisplayName("Interop Java " + i).build();
      created.add(create(CreateUserRequest.newBuilder().setUser(user).build()));
    }
    Set<String> seen = new HashSet<>();
    String token = "";
    int pages = 0;
    do {
      if (++pages > MAX_PAGES) {
        throw new IllegalStateException("still a next_page_token after " + MAX_PAGES + " pages");
      }
      ListUsersResponse res =
          stub()
              .listUsers(
                  ListUsersRequest.newBuilder().setPageSize(PAGE_SIZE).setPageToken(token).build());
      if (res.getUsersCount() > PAGE_SIZE) {
        throw new IllegalStateException(
            "page " + pages + " has " + res.getUsersCount() + " users, page_size is " + PAGE_SIZE);
      }
      for (User u : res.getUsersList()) {
        if (!seen.add(u.getId())) {
          throw new IllegalStateException("user " + u.getId() + " listed twice (page " + pages + ")");
        }
      }
      token = res.getNextPageToken();
    } while (!token.isEmpty());
    for (User u : created) {
      if (!seen.contains(u.getId())) {
        throw new IllegalStateException("created user " + u.getId() + " missing from the listing");
      }
    }
    return "page_size=" + PAGE_SIZE + ": " + pages + " pages, " + seen.size() + " users, all "
        + created.size() + " created seen, no duplicates";
  }

  private String notFound() throws InvalidProtocolBufferException {
    String missing = "missing-" + runId;
    StatusRuntimeException e =
        expectError(
            Status.Code.NOT_FOUND,
            () -> stub().getUser(GetUserRequest.newBuilder().setId(missing).build()));
    Details details = Details.of(e);
    if (!details.resourceName.equals(missing)) {
      throw new IllegalStateException(
          "ResourceInfo.resource_name is \"" + details.resourceName + "\", want \"" + missing + "\"");
    }
    return "GetUser(" + missing + ") -> NOT_FOUND reason=" + details.reason
        + " ResourceInfo.resource_name=" + details.resourceName;
  }

  private String invalidArgument() throws InvalidProtocolBufferException {
    User bad = User.newBuilder().setEmail("not-an-email").setDisplayName("Bad Email").build();
    StatusRuntimeException e =
        expectError(
            Status.Code.INVALID_ARGUMENT,
            () -> create(CreateUserRequest.newBuilder().setUser(bad).build()));
    Details details = Details.of(e);
    String violations = String.join("; ", details.violations);
    if (!violations.contains("email")) {
      throw new IllegalStateException(
          "no BadRequest field violation names the email (" + describe(e.getStatus()) + ")");
    }
    return "CreateUser(bad email) -> INVALID_ARGUMENT reason=" + details.reason + " BadRequest "
        + violations;
  }

  /** Follows WatchUsers from revision 0 until the CREATED event of create-user's user. */
  private String watchUsers() {
    String want = first().getId();
    // A cancellable context ends the stream as soon as the event is seen, on every path.
    try (Context.CancellableContext watch = Context.current().withCancellation()) {
      return watch.call(
          () -> {
            Iterator<WatchUsersResponse> stream =
                users
                    .withDeadlineAfter(WATCH_TIMEOUT_S, TimeUnit.SECONDS)
                    .watchUsers(WatchUsersRequest.newBuilder().setStartRevision(0).build());
            int received = 0;
            while (stream.hasNext()) {
              UserEvent ev = stream.next().getEvent();
              received++;
              if (ev.getType() == UserEventType.USER_EVENT_TYPE_CREATED
                  && ev.getUser().getId().equals(want)) {
                return "from revision 0: CREATED " + want + " at revision " + ev.getRevision()
                    + " (after " + received + " events)";
              }
            }
            throw new IllegalStateException(
                "stream ended after " + received + " events without CREATED " + want);
          });
    } catch (StatusRuntimeException | IllegalStateException e) {
      throw e;
    } catch (Exception e) {
      throw new IllegalStateException(e.getMessage(), e);
    }
  }

  private interface Call {
    void run();
  }

  /** Runs a call that must fail with {@code want}; returns its error. */
  private static StatusRuntimeException expectError(Status.Code want, Call call) {
    try {
      call.run();
    } catch (StatusRuntimeException e) {
      if (e.getStatus().getCode() != want) {
        throw new IllegalStateException("got " + describe(e.getStatus()) + ", want " + want);
      }
      return e;
    }
    throw new IllegalStateException("call succeeded, want " + want);
  }

  /** The google.rpc.Status details of the grpc-status-details-bin trailer. */
  private static final class Details {
    String reason = "?"; // ErrorInfo.reason
    String resourceName = ""; // ResourceInfo.resource_name
    final List<String> violations = new ArrayList<>(); // BadRequest "field: description"

    static Details of(StatusRuntimeException e) throws InvalidProtocolBufferException {
      Details d = new Details();
      com.google.rpc.Status st = StatusProto.fromThrowable(e);
      for (Any any : st == null ? List.<Any>of() : st.getDetailsList()) {
        if (any.is(ErrorInfo.class)) {
          d.reason = any.unpack(ErrorInfo.class).getReason();
        } else if (any.is(ResourceInfo.class)) {
          d.resourceName = any.unpack(ResourceInfo.class).getResourceName();
        } else if (any.is(BadRequest.class)) {
          for (BadRequest.FieldViolation fv : any.unpack(BadRequest.class).getFieldViolationsList()) {
            d.violations.add(fv.getField() + ": " + fv.getDescription());
          }
        }
      }
      return d;
    }
  }

  /** "CODE: description", the way a person reads it. */
  private static String describe(Status status) {
    return status.getCode() + ": " + status.getDescription();
  }
}
