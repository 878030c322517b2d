package dev.switchboard.interop;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import com.google.rpc.ResourceInfo;
import dev.switchboard.user.v1.CreateUserRequest;
import dev.switchboard.user.v1.GetUserRequest;
import dev.switchboard.user.v1.User;
import dev.switchboard.user.v1.UserServiceGrpc;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.concurrent.TimeUnit;

/**
 * Calls Switchboard's user service with the grpc-java stubs generated from protos/ (make
 * stubs), to show that the contracts work from another language.
 *
 * <p>Runs a few checks, prints "PASS name: detail" or "FAIL name: reason" for each and a final
 * "ALL CHECKS PASSED (n)" line; exits 0 only when every check holds. Usage: Main HOST:PORT
 */
public final class Main {
  private static final long CALL_TIMEOUT_S = 5;

  private final UserServiceGrpc.UserServiceBlockingStub users;
  private final String runId = Long.toHexString(System.nanoTime());
  private User created;

  private Main(ManagedChannel channel) {
    this.users = UserServiceGrpc.newBlockingStub(channel);
  }

  public static void main(String[] args) throws InterruptedException {
    if (args.length != 1) {
      System.err.println("usage: interop-java USER_HOST:PORT");
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

  private interface Check {
    String run() throws Exception;
  }

  private int runAll() {
    String[] names = {"create-user", "get-user", "not-found"};
    Check[] checks = {this::createUser, this::getUser, this::notFound};
    int failed = 0;
    for (int i = 0; i < checks.length; i++) {
      try {
        System.out.println("PASS " + names[i] + ": " + checks[i].run());
      } catch (StatusRuntimeException e) {
        System.out.println("FAIL " + names[i] + ": " + describe(e.getStatus()));
        failed++;
      } catch (Exception e) {
        System.out.println("FAIL " + names[i] + ": " + e.getMessage());
        failed++;
      }
    }
    System.out.println(
        failed == 0
            ? "ALL CHECKS PASSED (" + checks.length + ")"
            : failed + " OF " + checks.length + " CHECKS FAILED");
    return failed == 0 ? 0 : 1;
  }

  private UserServiceGrpc.UserServiceBlockingStub stub() {
    return users.withDeadlineAfter(CALL_TIMEOUT_S, TimeUnit.SECONDS);
  }

  private String createUser() {
    User want =
        User.newBuilder()
            .setEmail("interop-java-" + runId + "@example.com")
            .setDisplayName("Interop Java")
            .build();
    User got = stub().createUser(CreateUserRequest.newBuilder().setUser(want).build()).getUser();
    if (got.getId().isEmpty()
        || !got.getEmail().equals(want.getEmail())
        || !got.getDisplayName().equals(want.getDisplayName())) {
      throw new IllegalStateException("created user does not match the request: " + got);
    }
    created = got;
    return "id=" + got.getId() + " email=" + got.getEmail();
  }

  private String getUser() {
    if (created == null) {
      throw new IllegalStateException("needs the user of create-user, which failed");
    }
    User got = stub().getUser(GetUserRequest.newBuilder().setId(created.getId()).build()).getUser();
    if (!got.equals(created)) {
      throw new IllegalStateException(
          "GetUser returned " + got + ", CreateUser returned " + created);
    }
    return "id=" + got.getId() + ": every field equals CreateUser's answer";
  }

  private String notFound() throws InvalidProtocolBufferException {
    String missing = "missing-" + runId;
    try {
      stub().getUser(GetUserRequest.newBuilder().setId(missing).build());
    } catch (StatusRuntimeException e) {
      if (e.getStatus().getCode() != Status.Code.NOT_FOUND) {
        throw new IllegalStateException("got " + describe(e.getStatus()) + ", want NOT_FOUND");
      }
      return "GetUser(" + missing + ") -> NOT_FOUND " + details(e, missing);
    }
    throw new IllegalStateException("GetUser(" + missing + ") succeeded, want NOT_FOUND");
  }

  /** Decodes the google.rpc.Status details of the grpc-status-details-bin trailer. */
  private static String details(StatusRuntimeException e, String missing)
      throws InvalidProtocolBufferException {
    com.google.rpc.Status st = StatusProto.fromThrowable(e);
    String reason = "?";
    String resource = "";
    for (Any any : st == null ? java.util.List.<Any>of() : st.getDetailsList()) {
      if (any.is(ErrorInfo.class)) {
        reason = any.unpack(ErrorInfo.class).getReason();
      } else if (any.is(ResourceInfo.class)) {
        resource = any.unpack(ResourceInfo.class).getResourceName();
      }
    }
    if (!resource.equals(missing)) {
      throw new IllegalStateException("ResourceInfo.resource_name is \"" + resource + "\"");
    }
    return "reason=" + reason + " ResourceInfo.resource_name=" + resource;
  }

  private static String describe(Status status) {
    return status.getCode() + ": " + status.getDescription();
  }
}
