// Calls Switchboard's user service with the ts-proto + @grpc/grpc-js stubs generated from
// protos/ (make stubs), to show that the contracts work from another language.
// Usage: tsx src/main.ts HOST:PORT
import { credentials, Metadata } from "@grpc/grpc-js";
import {
  ListUsersResponse,
  UserServiceClient,
} from "../../../generated/ts/switchboard/user/v1/user_service";

function main(): void {
  const target = process.argv[2];
  if (!target) {
    console.error("usage: interop-ts HOST:PORT");
    process.exit(2);
  }
  const client = new UserServiceClient(target, credentials.createInsecure());
  const deadline = new Date(Date.now() + 5_000);
  client.listUsers(
    { pageSize: 10, pageToken: "" },
    new Metadata(),
    { deadline },
    (err: Error | null, res?: ListUsersResponse) => {
      client.close();
      if (err || !res) {
        console.error(`interop-ts: ${err?.message ?? "no response"}`);
        process.exit(1);
      }
      for (const u of res.users) {
        console.log([u.id, u.email, u.displayName, u.createTime?.toISOString() ?? ""].join("\t"));
      }
      console.log(`next_page_token=${JSON.stringify(res.nextPageToken)}`);
    },
  );
}

main();
