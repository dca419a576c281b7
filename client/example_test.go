package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/announce/announce/client"
	"github.com/announce/announce/internal/serve"
)

// exampleServer starts a real announce node in memory for the examples.
func exampleServer() *serve.Node {
	node, err := serve.Start(serve.Config{Listen: "127.0.0.1:0", Memory: true})
	if err != nil {
		log.Fatal(err)
	}
	return node
}

// Publish two announcements, then read the channel's history and live
// messages over Server-Sent Events.
func Example() {
	node := exampleServer()
	defer node.Shutdown(context.Background())
	ctx := context.Background()

	c, err := client.New(client.Config{Server: node.URL()})
	if err != nil {
		log.Fatal(err)
	}
	for _, text := range []string{"Server maintenance at 22:00", "Maintenance moved to 23:00"} {
		m, err := c.Publish(ctx, "ops", text)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("published", m.ID)
	}

	since := uint64(0) // everything the history holds
	sub := c.Subscribe(ctx, "ops", client.SubscribeOptions{Transport: client.SSE, Since: &since})
	defer sub.Close()
	for m := range sub.Messages() {
		fmt.Printf("%d: %s\n", m.ID, m.Content)
		if m.ID == 2 {
			break
		}
	}
	// Output:
	// published 1
	// published 2
	// 1: Server maintenance at 22:00
	// 2: Maintenance moved to 23:00
}

// A subscription without a cursor starts with the channel's current
// message, then follows it; it reconnects and resumes by itself, reporting
// what happens to its connection on Events.
func ExampleClient_Subscribe() {
	node := exampleServer()
	defer node.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _ := client.New(client.Config{Server: node.URL()})
	if _, err := c.Publish(ctx, "default", "Welcome"); err != nil {
		log.Fatal(err)
	}

	sub := c.Subscribe(ctx, "default", client.SubscribeOptions{Transport: client.WebSocket})
	defer sub.Close()
	for ev := range sub.Events() {
		if ev.Kind == client.Connected {
			fmt.Println("connected over", ev.Transport)
			break
		}
	}
	fmt.Println((<-sub.Messages()).Content) // the current message
	if _, err := c.Publish(ctx, "default", "Doors open at 9"); err != nil {
		log.Fatal(err)
	}
	fmt.Println((<-sub.Messages()).Content) // a new one
	// Output:
	// connected over ws
	// Welcome
	// Doors open at 9
}

// The server's refusals come back as *client.Error with the HTTP status;
// publishing is retried only when the server or the network failed.
func ExampleClient_Publish() {
	node, err := serve.Start(serve.Config{Listen: "127.0.0.1:0", Memory: true, PublishKey: "s3cret"})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Shutdown(context.Background())
	ctx := context.Background()

	anonymous, _ := client.New(client.Config{Server: node.URL()})
	_, err = anonymous.Publish(ctx, "ops", "hello")
	var refused *client.Error
	if errors.As(err, &refused) && refused.StatusCode == http.StatusUnauthorized {
		fmt.Println("refused:", refused.StatusCode)
	}

	keyed, _ := client.New(client.Config{Server: node.URL(), Key: "s3cret"})
	m, err := keyed.Publish(ctx, "ops", "hello")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("published", m.ID, m.Content)
	// Output:
	// refused: 401
	// published 1 hello
}
