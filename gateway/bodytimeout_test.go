package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	filebatchv1 "example.com/filebatch/gen/filebatch/v1"
)

// TestSlowBodyTimesOut sends a request whose body stops arriving and checks
// that the façade answers 400 once BodyReadTimeout passes, without calling
// the service, and closes the connection.
func TestSlowBodyTimesOut(t *testing.T) {
	stub := &stubServer{cancel: func(context.Context, *filebatchv1.CancelFileBatchRequest) (*filebatchv1.VectorStoreFileBatch, error) {
		t.Error("service called for a request whose body never arrived")
		return &filebatchv1.VectorStoreFileBatch{}, nil
	}}
	f := startFacade(t, stub, Options{BodyReadTimeout: 200 * time.Millisecond})

	conn, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	head := "POST " + cancelPath("vs_1", "vsfb_1") + " HTTP/1.1\r\nHost: facade\r\nContent-Length: 100\r\n\r\n"
	if _, err := io.WriteString(conn, head+"0123456789"); err != nil {
		t.Fatalf("write request: %v", err)
	}

	reader := bufio.NewReader(conn)
	resp, err := http.ReadResponse(reader, nil)
	if err != nil {
		t.Fatalf("read response: %v, want a 400 once the body timed out", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status = %d, want %d", resp.StatusCode, http.StatusBadRequest)
	}
	if !strings.Contains(string(body), "could not be read") {
		t.Errorf("body = %s, want the OpenAI envelope saying the body could not be read", body)
	}
	if _, err := reader.ReadByte(); err != io.EOF {
		t.Errorf("read after the response = %v, want io.EOF: the server should close the connection", err)
	}
}
