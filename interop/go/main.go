// Command interop-go calls Switchboard's user service with the Go stubs generated from
// protos/ (make stubs), to show that the contracts work from another language.
//
// Usage: interop-go HOST:PORT
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	userv1 "github.com/switchboard-dev/switchboard/generated/go/switchboard/user/v1"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: interop-go HOST:PORT")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "interop-go:", err)
		os.Exit(1)
	}
}

func run(target string) error {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	users := userv1.NewUserServiceClient(conn)
	res, err := users.ListUsers(ctx, &userv1.ListUsersRequest{PageSize: 10})
	if err != nil {
		return err
	}
	for _, u := range res.GetUsers() {
		fmt.Printf("%s\t%s\t%s\t%s\n", u.GetId(), u.GetEmail(), u.GetDisplayName(),
			u.GetCreateTime().AsTime().Format(time.RFC3339))
	}
	fmt.Printf("next_page_token=%q\n", res.GetNextPageToken())
	return nil
}
