package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestAcknowledgedWritesSurviveKill9 runs the real binary, writes from
// several clients, kills the process with SIGKILL mid-stream and checks that
// every write that got a 200 is there after a restart.
func TestAcknowledgedWritesSurviveKill9(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if out, err := exec.Command(bin, "superuser", "upsert", "root@strata.test", "root-pass-123", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("superuser: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	srv := startServe(t, bin, addr, dir)
	base := "http://" + addr
	token := post(t, base+"/api/collections/_superusers/auth-with-password", "", `{"identity":"root@strata.test","password":"root-pass-123"}`)["token"].(string)
	post(t, base+"/api/collections", token, `{"name":"events","createRule":"","viewRule":"","fields":[{"name":"n","type":"number"}]}`)

	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"n":%d}`, w*100000+i)
				res, err := client.Post(base+"/api/collections/events/records", "application/json", bytes.NewBufferString(body))
				if err != nil {
					return // the server is gone
				}
				raw, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					continue
				}
				var rec struct{ ID string }
				if json.Unmarshal(raw, &rec) == nil && rec.ID != "" {
					mu.Lock()
					acked = append(acked, rec.ID)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.Wait()
	close(stop)
	wg.Wait()
	if len(acked) < 50 {
		t.Fatalf("only %d writes acknowledged before the kill; the test proves nothing", len(acked))
	}

	srv = startServe(t, bin, addr, dir)
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	missing := 0
	for _, id := range acked {
		res, err := client.Get(base + "/api/collections/events/records/" + id)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged writes lost after kill -9", missing, len(acked))
	}
	t.Logf("%d acknowledged writes all present after kill -9", len(acked))
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startServe(t *testing.T, bin, addr, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--http", addr, "--dir", dir, "--log-level", "warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if res, err := http.Get("http://" + addr + "/api/health"); err == nil {
			res.Body.Close()
			return cmd
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	t.Fatalf("serve did not start:\n%s", logs.String())
	return nil
}

func post(t *testing.T, url, token, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("POST %s: %d %s", url, res.StatusCode, raw)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	return m
}
