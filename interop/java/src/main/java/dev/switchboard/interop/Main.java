package dev.switchboard.interop;

import dev.switchboard.user.v1.ListUsersRequest;
import dev.switchboard.user.v1.ListUsersResponse;
import dev.switchboard.user.v1.User;
import dev.switchboard.user.v1.UserServiceGrpc;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import java.time.Instant;
import java.util.concurrent.TimeUnit;

/**
 * Calls Switchboard's user service with the grpc-java stubs generated from protos/ (make
 * stubs), to show that the contracts work from another language. Usage: Main HOST:PORT
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) throws InterruptedException {
    if (args.length != 1) {
      System.err.println("usage: interop-java HOST:PORT");
      System.exit(2);
    }
    ManagedChannel channel =
        Grpc.newChannelBuilder(args[0], InsecureChannelCredentials.create()).build();
    int code = 0;
    try {
      UserServiceGrpc.UserServiceBlockingStub users =
          UserServiceGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS);
      ListUsersResponse res = users.listUsers(ListUsersRequest.newBuilder().setPageSize(10).build());
      for (User u : res.getUsersList()) {
        Instant created =
            Instant.ofEpochSecond(u.getCreateTime().getSeconds(), u.getCreateTime().getNanos());
        System.out.println(
            String.join("\t", u.getId(), u.getEmail(), u.getDisplayName(), created.toString()));
      }
      System.out.println("next_page_token=\"" + res.getNextPageToken() + "\"");
    } catch (StatusRuntimeException e) {
      System.err.println("interop-java: " + e.getStatus().getCode() + ": " + e.getStatus().getDescription());
      code = 1;
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    System.exit(code);
  }
}
