// Command interop-go calls Switchboard's user service with the Go stubs generated from
// protos/ (make stubs), to show that the contracts work from another language.
//
// It runs a fixed list of checks, prints one line per check ("PASS name: detail" or
// "FAIL name: reason") and a final "ALL CHECKS PASSED (n)" line, and exits 0 only when
// every check holds (1 when one fails, 2 on bad usage). Each run uses fresh emails and
// ids, so it can run again and again against the same service.
//
// Usage: interop-go USER_TARGET [PRODUCT_TARGET]   (interop-go --help prints this)
//
// A target is HOST:PORT, or xds:///user to find the service through the registry's xDS
// control plane (GRPC_XDS_BOOTSTRAP names the bootstrap file; `python -m registry.xds
// bootstrap --registry HOST:PORT` prints one). With PRODUCT_TARGET one more check lists
// products through it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	// Registers the xds:/// resolver and the xDS balancers (gRFC A27).
	_ "google.golang.org/grpc/xds"

	productv1 "github.com/switchboard-dev/switchboard/generated/go/switchboard/product/v1"
	userv1 "github.com/switchboard-dev/switchboard/generated/go/switchboard/user/v1"
)

const (
	callTimeout  = 5 * time.Second // per unary call
	watchTimeout = 5 * time.Second // how long WatchUsers may take to show our CREATED event
	maxPages     = 10000           // bound on the ListUsers loop
	pageSize     = 2
	listedUsers  = 3 // users of this run the paging check must see (more pages than one)
)

// checker holds the connection and what earlier checks created for later ones.
type checker struct {
	users    userv1.UserServiceClient
	products productv1.ProductServiceClient // nil without PRODUCT_TARGET
	runID    string
	created  []*userv1.User
}

// check is one named assertion: it returns a detail to print, or why it failed.
type check struct {
	name string
	run  func(c *checker) (string, error)
}

var checks = []check{
	{"create-user", (*checker).createUser},
	{"get-user", (*checker).getUser},
	{"create-user-with-id", (*checker).createUserWithID},
	{"list-users-paged", (*checker).listUsersPaged},
	{"not-found", (*checker).notFound},
	{"invalid-argument", (*checker).invalidArgument},
	{"watch-users", (*checker).watchUsers},
}

const usage = `usage: interop-go USER_TARGET [PRODUCT_TARGET]

Runs Switchboard's interop checks against the user service at USER_TARGET
(HOST:PORT, or xds:///user with GRPC_XDS_BOOTSTRAP naming a bootstrap file);
with PRODUCT_TARGET one more check lists products. Prints "PASS name: detail"
or "FAIL name: reason" per check; exits 0 when every check passes, 1 when one
fails, 2 on bad usage.`

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "-h" || os.Args[1] == "--help") {
		fmt.Println(usage)
		return
	}
	if len(os.Args) != 2 && len(os.Args) != 3 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	conn := dial(os.Args[1])
	runID := fmt.Sprintf("%x", time.Now().UnixNano())
	c := &checker{users: userv1.NewUserServiceClient(conn), runID: runID}
	if len(os.Args) == 3 {
		productConn := dial(os.Args[2])
		defer productConn.Close()
		c.products = productv1.NewProductServiceClient(productConn)
		checks = append(checks, check{"list-products", (*checker).listProducts})
	}
	code := c.runAll()
	conn.Close()
	os.Exit(code)
}

// dial makes a plaintext client for target (HOST:PORT or xds:///NAME); bad usage exits 2.
func dial(target string) *grpc.ClientConn {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop-go:", err)
		os.Exit(2)
	}
	return conn
}

// listProducts lists one page of products (the call must succeed; the list may be empty).
func (c *checker) listProducts() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res, err := c.products.ListProducts(ctx, &productv1.ListProductsRequest{PageSize: 1}, grpc.WaitForReady(true))
	if err != nil {
		return "", describe(err)
	}
	return fmt.Sprintf("page_size=1 listed=%d", len(res.GetProducts())), nil
}

// runAll runs every check in order (a failed one does not hide the others' results) and
// returns the process exit code.
func (c *checker) runAll() int {
	failed := 0
	for _, ch := range checks {
		detail, err := ch.run(c)
		if err != nil {
			fmt.Printf("FAIL %s: %v\n", ch.name, err)
			failed++
			continue
		}
		fmt.Printf("PASS %s: %s\n", ch.name, detail)
	}
	if failed > 0 {
		fmt.Printf("%d OF %d CHECKS FAILED\n", failed, len(checks))
		return 1
	}
	fmt.Printf("ALL CHECKS PASSED (%d)\n", len(checks))
	return 0
}

// first is the user of the create-user check, which later checks read back.
func (c *checker) first() (*userv1.User, error) {
	if len(c.created) == 0 {
		return nil, errors.New("needs the user of create-user, which failed")
	}
	return c.created[0], nil
}

func (c *checker) email(i int) string {
	return fmt.Sprintf("interop-go-%s-%d@example.com", c.runID, i)
}

func (c *checker) create(req *userv1.CreateUserRequest) (*userv1.User, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res, err := c.users.CreateUser(ctx, req)
	if err != nil {
		return nil, describe(err)
	}
	return res.GetUser(), nil
}

func (c *checker) createUser() (string, error) {
	want := &userv1.User{Email: c.email(0), DisplayName: "Interop Go 0"}
	u, err := c.create(&userv1.CreateUserRequest{User: want, RequestId: "go-" + c.runID + "-0"})
	if err != nil {
		return "", err
	}
	if u.GetId() == "" || u.GetEmail() != want.Email || u.GetDisplayName() != want.DisplayName {
		return "", fmt.Errorf("created user does not match the request: %v", u)
	}
	if u.GetCreateTime() == nil || u.GetEtag() == "" {
		return "", fmt.Errorf("created user lacks create_time or etag: %v", u)
	}
	c.created = append(c.created, u)
	return fmt.Sprintf("id=%s email=%s", u.GetId(), u.GetEmail()), nil
}

func (c *checker) getUser() (string, error) {
	want, err := c.first()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res, err := c.users.GetUser(ctx, &userv1.GetUserRequest{Id: want.GetId()})
	if err != nil {
		return "", describe(err)
	}
	if !proto.Equal(res.GetUser(), want) {
		return "", fmt.Errorf("GetUser returned %v, CreateUser returned %v", res.GetUser(), want)
	}
	return fmt.Sprintf("id=%s: every field equals CreateUser's answer", want.GetId()), nil
}

// createUserWithID creates a user with an id chosen by the client
// (CreateUserRequest.user_id, AIP-133).
func (c *checker) createUserWithID() (string, error) {
	id := "go-" + c.runID
	u, err := c.create(&userv1.CreateUserRequest{
		User:   &userv1.User{Email: c.email(1), DisplayName: "Interop Go chosen id"},
		UserId: id,
	})
	if err != nil {
		return "", err
	}
	if u.GetId() != id {
		return "", fmt.Errorf("asked for user_id %q, got id %q", id, u.GetId())
	}
	c.created = append(c.created, u)
	return "id=" + id, nil
}

// listUsersPaged pages through every user, two at a time, after making sure at least
// listedUsers users of this run exist.
func (c *checker) listUsersPaged() (string, error) {
	for i := len(c.created); i < listedUsers; i++ {
		u, err := c.create(&userv1.CreateUserRequest{
			User: &userv1.User{Email: c.email(10 + i), DisplayName: fmt.Sprintf("Interop Go %d", i)},
		})
		if err != nil {
			return "", err
		}
		c.created = append(c.created, u)
	}
	seen := map[string]bool{}
	token, pages := "", 0
	for pages = 1; pages <= maxPages; pages++ {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		res, err := c.users.ListUsers(ctx, &userv1.ListUsersRequest{PageSize: pageSize, PageToken: token})
		cancel()
		if err != nil {
			return "", describe(err)
		}
		if len(res.GetUsers()) > pageSize {
			return "", fmt.Errorf("page %d has %d users, page_size is %d",
				pages, len(res.GetUsers()), pageSize)
		}
		for _, u := range res.GetUsers() {
			if seen[u.GetId()] {
				return "", fmt.Errorf("user %s listed twice (page %d)", u.GetId(), pages)
			}
			seen[u.GetId()] = true
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	if token != "" {
		return "", fmt.Errorf("still a next_page_token after %d pages", maxPages)
	}
	for _, u := range c.created {
		if !seen[u.GetId()] {
			return "", fmt.Errorf("created user %s missing from the listing", u.GetId())
		}
	}
	return fmt.Sprintf("page_size=%d: %d pages, %d users, all %d created seen, no duplicates",
		pageSize, pages, len(seen), len(c.created)), nil
}

func (c *checker) notFound() (string, error) {
	missing := "missing-" + c.runID
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := c.users.GetUser(ctx, &userv1.GetUserRequest{Id: missing})
	st, err := wantCode(err, codes.NotFound)
	if err != nil {
		return "", err
	}
	info, reason := details(st)
	if info.resource != missing {
		return "", fmt.Errorf("ResourceInfo.resource_name is %q, want %q (details: %v)",
			info.resource, missing, st.Details())
	}
	return fmt.Sprintf("GetUser(%s) -> NOT_FOUND reason=%s ResourceInfo.resource_name=%s",
		missing, reason, info.resource), nil
}

func (c *checker) invalidArgument() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := c.users.CreateUser(ctx, &userv1.CreateUserRequest{
		User: &userv1.User{Email: "not-an-email", DisplayName: "Bad Email"},
	})
	st, err := wantCode(err, codes.InvalidArgument)
	if err != nil {
		return "", err
	}
	info, reason := details(st)
	if !strings.Contains(info.violations, "email") {
		return "", fmt.Errorf("no BadRequest field violation names the email (details: %v)", st.Details())
	}
	return fmt.Sprintf("CreateUser(bad email) -> INVALID_ARGUMENT reason=%s BadRequest %s",
		reason, info.violations), nil
}

func (c *checker) watchUsers() (string, error) {
	user, err := c.first()
	if err != nil {
		return "", err
	}
	want := user.GetId()
	ctx, cancel := context.WithTimeout(context.Background(), watchTimeout)
	defer cancel() // ends the stream on every path
	stream, err := c.users.WatchUsers(ctx, &userv1.WatchUsersRequest{StartRevision: 0})
	if err != nil {
		return "", describe(err)
	}
	for received := 0; ; received++ {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("stream ended after %d events without CREATED %s", received, want)
		}
		if err != nil {
			return "", fmt.Errorf("after %d events: %w", received, describe(err))
		}
		ev := res.GetEvent()
		if ev.GetType() == userv1.UserEventType_USER_EVENT_TYPE_CREATED && ev.GetUser().GetId() == want {
			return fmt.Sprintf("from revision 0: CREATED %s at revision %d (after %d events)",
				want, ev.GetRevision(), received+1), nil
		}
	}
}

// wantCode returns err's status when it carries the code want, else an error saying what came.
func wantCode(err error, want codes.Code) (*status.Status, error) {
	if err == nil {
		return nil, fmt.Errorf("call succeeded, want %s", want)
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != want {
		return nil, fmt.Errorf("got %v, want %s", err, want)
	}
	return st, nil
}

type decoded struct {
	resource   string // ResourceInfo.resource_name
	violations string // BadRequest field violations, "field: description; ..."
}

// details decodes the google.rpc.Status details of the grpc-status-details-bin trailer.
func details(st *status.Status) (decoded, string) {
	var d decoded
	reason := "?"
	var parts []string
	for _, detail := range st.Details() {
		switch v := detail.(type) {
		case *errdetails.ErrorInfo:
			reason = v.GetReason()
		case *errdetails.ResourceInfo:
			d.resource = v.GetResourceName()
		case *errdetails.BadRequest:
			for _, fv := range v.GetFieldViolations() {
				parts = append(parts, fv.GetField()+": "+fv.GetDescription())
			}
		}
	}
	d.violations = strings.Join(parts, "; ")
	return d, reason
}

// describe turns an RPC error into "CODE: message", the way a person reads it.
func describe(err error) error {
	if st, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s", st.Code(), st.Message())
	}
	return err
}
