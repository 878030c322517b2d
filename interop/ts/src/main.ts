// Calls Switchboard's user service with the ts-proto + @grpc/grpc-js stubs generated from
// protos/ (make stubs), to show that the contracts work from another language. The stubs are
// the @switchboard/contracts npm package, a plain dependency in package.json.
//
// Runs a fixed list of checks, prints one line per check ("PASS name: detail" or
// "FAIL name: reason") and a final "ALL CHECKS PASSED (n)" line, and exits 0 only when
// every check holds (1 when one fails, 2 on bad usage). Every run uses fresh emails and ids.
//
// Usage: tsx src/main.ts USER_TARGET [PRODUCT_TARGET]   (--help prints the usage)
//
// A target is HOST:PORT, or xds:///user to find the service through the registry's xDS
// control plane (GRPC_XDS_BOOTSTRAP names the bootstrap file; `python -m registry.xds
// bootstrap --registry HOST:PORT` prints one). With PRODUCT_TARGET one more check lists
// products through it.
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import * as xds from "@grpc/grpc-js-xds";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { User, UserEventType } from "@switchboard/contracts/switchboard/user/v1/user";
import {
  type CreateUserRequest,
  UserServiceClient,
  type WatchUsersResponse,
} from "@switchboard/contracts/switchboard/user/v1/user_service";
import {
  ListProductsRequest,
  ProductServiceClient,
} from "@switchboard/contracts/switchboard/product/v1/product_service";

const CALL_TIMEOUT_MS = 5_000; // per unary call
const WATCH_TIMEOUT_MS = 5_000; // how long WatchUsers may take to show our CREATED event
const MAX_PAGES = 10_000; // bound on the ListUsers loop
const PAGE_SIZE = 2;
const LISTED_USERS = 3; // users of this run the paging check must see (more pages than one)

type Check = { name: string; run: () => Promise<string> };

class Checker {
  readonly runId = `${Date.now().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`;
  readonly created: User[] = [];

  constructor(private readonly users: UserServiceClient) {}

  checks(): Check[] {
    return [
      { name: "create-user", run: () => this.createUser() },
      { name: "get-user", run: () => this.getUser() },
      { name: "create-user-with-id", run: () => this.createUserWithId() },
      { name: "list-users-paged", run: () => this.listUsersPaged() },
      { name: "not-found", run: () => this.notFound() },
      { name: "invalid-argument", run: () => this.invalidArgument() },
      { name: "watch-users", run: () => this.watchUsers() },
    ];
  }

  email(i: number): string {
    return `interop-ts-${this.runId}-${i}@example.com`;
  }

  first(): User {
    const user = this.created[0];
    if (!user) throw new Error("needs the user of create-user, which failed");
    return user;
  }

  create(req: Partial<CreateUserRequest>): Promise<User> {
    const full: CreateUserRequest = { requestId: "", userId: "", ...req };
    return new Promise((resolve, reject) => {
      this.users.createUser(full, new Metadata(), { deadline: deadline() }, (err, res) => {
        if (err) reject(describe(err));
        else if (!res.user) reject(new Error("CreateUser returned no user"));
        else resolve(res.user);
      });
    });
  }

  async createUser(): Promise<string> {
    const want = { email: this.email(0), displayName: "Interop TS 0" };
    const requestId = `ts-${this.runId}-0`;
    const user = await this.create({ user: { ...want, id: "", etag: "" }, requestId });
    if (!user.id || user.email !== want.email || user.displayName !== want.displayName) {
      throw new Error(`created user does not match the request: ${JSON.stringify(user)}`);
    }
    if (!user.createTime || !user.etag) {
      throw new Error(`created user lacks create_time or etag: ${JSON.stringify(user)}`);
    }
    this.created.push(user);
    return `id=${user.id} email=${user.email}`;
  }

  async getUser(): Promise<string> {
    const want = this.first();
    const got = await new Promise<User | undefined>((resolve, reject) => {
      this.users.getUser({ id: want.id }, new Metadata(), { deadline: deadline() }, (err, res) =>
        err ? reject(describe(err)) : resolve(res.user),
      );
    });
    const a = JSON.stringify(User.toJSON(got ?? User.create()));
    const b = JSON.stringify(User.toJSON(want));
    if (a !== b) throw new Error(`GetUser returned ${a}, CreateUser returned ${b}`);
    return `id=${want.id}: every field equals CreateUser's answer`;
  }

  async createUserWithId(): Promise<string> {
    const id = `ts-${this.runId}`;
    const user = await this.create({
      user: { id: "", email: this.email(1), displayName: "Interop TS chosen id", etag: "" },
      userId: id,
    });
    if (user.id !== id) throw new Error(`asked for user_id "${id}", got id "${user.id}"`);
    this.created.push(user);
    return `id=${id}`;
  }

  async listUsersPaged(): Promise<string> {
    for (let i = this.created.length; i < LISTED_USERS; i++) {
      const user = { id: "", email: this.email(10 + i), displayName: `Interop TS ${i}`, etag: "" };
      this.created.push(await this.create({ user }));
    }
    const seen = new Set<string>();
    let token = "";
    let pages = 0;
    do {
      if (++pages > MAX_PAGES) throw new Error(`still a next_page_token after ${MAX_PAGES} pages`);
      const res = await this.listPage(token);
      if (res.users.length > PAGE_SIZE) {
        throw new Error(`page ${pages} has ${res.users.length} users, page_size is ${PAGE_SIZE}`);
      }
      for (const u of res.users) {
        if (seen.has(u.id)) throw new Error(`user ${u.id} listed twice (page ${pages})`);
        seen.add(u.id);
      }
      token = res.nextPageToken;
    } while (token !== "");
    const missing = this.created.filter((u) => !seen.has(u.id)).map((u) => u.id);
    if (missing.length > 0) throw new Error(`created users missing from the listing: ${missing}`);
    return (
      `page_size=${PAGE_SIZE}: ${pages} pages, ${seen.size} users, ` +
      `all ${this.created.length} created seen, no duplicates`
    );
  }

  listPage(pageToken: string): Promise<{ users: User[]; nextPageToken: string }> {
    return new Promise((resolve, reject) => {
      const req = { pageSize: PAGE_SIZE, pageToken };
      this.users.listUsers(req, new Metadata(), { deadline: deadline() }, (err, res) =>
        err ? reject(describe(err)) : resolve(res),
      );
    });
  }

  async notFound(): Promise<string> {
    const missing = `missing-${this.runId}`;
    const err = await expectError(status.NOT_FOUND, (cb) =>
      this.users.getUser({ id: missing }, new Metadata(), { deadline: deadline() }, cb),
    );
    const details = decodeStatusDetails(err);
    if (details.resourceName !== missing) {
      throw new Error(`ResourceInfo.resource_name is "${details.resourceName}", want "${missing}"`);
    }
    return (
      `GetUser(${missing}) -> NOT_FOUND reason=${details.reason} ` +
      `ResourceInfo.resource_name=${details.resourceName} message="${err.details}"`
    );
  }

  async invalidArgument(): Promise<string> {
    const req = {
      user: { id: "", email: "not-an-email", displayName: "Bad Email", etag: "" },
      requestId: "",
      userId: "",
    };
    const err = await expectError(status.INVALID_ARGUMENT, (cb) =>
      this.users.createUser(req, new Metadata(), { deadline: deadline() }, cb),
    );
    const details = decodeStatusDetails(err);
    const violations = details.violations.join("; ");
    if (!violations.includes("email")) {
      throw new Error(`no BadRequest field violation names the email (message "${err.details}")`);
    }
    return (
      `CreateUser(bad email) -> INVALID_ARGUMENT reason=${details.reason} ` +
      `BadRequest ${violations}`
    );
  }

  watchUsers(): Promise<string> {
    const want = this.first().id;
    const stream = this.users.watchUsers({ startRevision: 0 }, new Metadata(), {
      deadline: new Date(Date.now() + WATCH_TIMEOUT_MS),
    });
    let received = 0;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        stream.cancel();
        reject(new Error(`no CREATED ${want} within ${WATCH_TIMEOUT_MS} ms (${received} events)`));
      }, WATCH_TIMEOUT_MS);
      const finish = (outcome: () => void): void => {
        clearTimeout(timer);
        stream.cancel(); // we have what we came for: end the stream
        outcome();
      };
      stream.on("data", (res: WatchUsersResponse) => {
        received++;
        const ev = res.event;
        if (ev?.type === UserEventType.USER_EVENT_TYPE_CREATED && ev.user?.id === want) {
          const at = `at revision ${ev.revision} (after ${received} events)`;
          finish(() => resolve(`from revision 0: CREATED ${want} ${at}`));
        }
      });
      // After our own cancel() the stream errors with CANCELLED: the promise is settled by then.
      stream.on("error", (err: ServiceError) => finish(() => reject(describe(err))));
      stream.on("end", () =>
        finish(() => reject(new Error(`stream ended after ${received} events`))),
      );
    });
  }
}

function deadline(): Date {
  return new Date(Date.now() + CALL_TIMEOUT_MS);
}

function describe(err: ServiceError): Error {
  return new Error(`${status[err.code] ?? err.code}: ${err.details}`);
}

/** Runs a unary call that must fail with `code`; resolves with its error. */
function expectError(
  code: status,
  call: (cb: (err: ServiceError | null) => void) => void,
): Promise<ServiceError> {
  return new Promise((resolve, reject) => {
    call((err) => {
      if (!err) reject(new Error(`call succeeded, want ${status[code]}`));
      else if (err.code !== code) {
        reject(new Error(`got ${status[err.code]}: ${err.details}, want ${status[code]}`));
      }
      else resolve(err);
    });
  });
}

// --- google.rpc.Status details, decoded from the grpc-status-details-bin trailer ---------
// The contracts do not include google/rpc/*.proto, so the few fields needed are read with
// @bufbuild/protobuf's wire reader (field numbers from google/rpc/status.proto and
// error_details.proto).

type Fields = Map<number, Uint8Array[]>;

/** The length-delimited fields (strings, bytes, messages) of a message, by field number. */
function lengthDelimited(buf: Uint8Array): Fields {
  const reader = new BinaryReader(buf);
  const fields: Fields = new Map();
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (wireType === WireType.LengthDelimited) {
      fields.set(no, [...(fields.get(no) ?? []), reader.bytes()]);
    } else {
      reader.skip(wireType, no);
    }
  }
  return fields;
}

function text(fields: Fields, no: number): string {
  return new TextDecoder().decode(fields.get(no)?.[0] ?? new Uint8Array());
}

type StatusDetails = { reason: string; resourceName: string; violations: string[] };

function decodeStatusDetails(err: ServiceError): StatusDetails {
  const out: StatusDetails = { reason: "?", resourceName: "", violations: [] };
  const raw = err.metadata?.get("grpc-status-details-bin")[0];
  if (!(raw instanceof Uint8Array)) return out;
  for (const any of lengthDelimited(raw).get(3) ?? []) {
    // google.rpc.Status.details (3) is a repeated google.protobuf.Any: type_url (1), value (2).
    const anyFields = lengthDelimited(any);
    const type = text(anyFields, 1).split("/").pop();
    const value = lengthDelimited(anyFields.get(2)?.[0] ?? new Uint8Array());
    if (type === "google.rpc.ErrorInfo") out.reason = text(value, 1);
    if (type === "google.rpc.ResourceInfo") out.resourceName = text(value, 2);
    if (type === "google.rpc.BadRequest") {
      for (const fv of value.get(1) ?? []) {
        const f = lengthDelimited(fv);
        out.violations.push(`${text(f, 1)}: ${text(f, 2)}`);
      }
    }
  }
  return out;
}

// listProducts lists one page of products through `products` (the list may be empty).
function listProducts(products: ProductServiceClient): Promise<string> {
  return new Promise((resolve, reject) => {
    const options = { deadline: deadline(), waitForReady: true };
    const request = ListProductsRequest.fromPartial({ pageSize: 1 });
    products.listProducts(request, new Metadata(), options, (err, res) => {
      if (err) reject(describe(err));
      else resolve(`page_size=1 listed=${res.products.length}`);
    });
  });
}

const USAGE = `usage: interop-ts USER_TARGET [PRODUCT_TARGET]

Runs Switchboard's interop checks against the user service at USER_TARGET
(HOST:PORT, or xds:///user with GRPC_XDS_BOOTSTRAP naming a bootstrap file);
with PRODUCT_TARGET one more check lists products. Prints "PASS name: detail"
or "FAIL name: reason" per check; exits 0 when every check passes, 1 when one
fails, 2 on bad usage.`;

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const [target, productTarget] = args;
  if (args.length === 1 && (target === "--help" || target === "-h")) {
    console.log(USAGE);
    return 0;
  }
  if (!target || target.startsWith("-") || args.length > 2) {
    console.error(USAGE);
    return 2;
  }
  xds.register(); // the xds:/// resolver and balancers (gRFC A27)
  const client = new UserServiceClient(target, credentials.createInsecure());
  const checker = new Checker(client);
  let failed = 0;
  const checks = checker.checks();
  const products = productTarget
    ? new ProductServiceClient(productTarget, credentials.createInsecure())
    : undefined;
  if (products) checks.push({ name: "list-products", run: () => listProducts(products) });
  for (const check of checks) {
    try {
      console.log(`PASS ${check.name}: ${await check.run()}`);
    } catch (err) {
      console.log(`FAIL ${check.name}: ${err instanceof Error ? err.message : String(err)}`);
      failed++;
    }
  }
  client.close();
  products?.close();
  const n = checks.length;
  console.log(failed ? `${failed} OF ${n} CHECKS FAILED` : `ALL CHECKS PASSED (${n})`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error("interop-ts:", err);
    process.exit(1);
  },
);
