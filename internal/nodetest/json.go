package nodetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// GetJSON decodes the answer to GET url into v; hdr are header names and
// values to send. An answer other than 200 is an error.
func GetJSON(url string, v any, hdr ...string) error {
	return Get(context.Background(), http.DefaultClient, url, v, hdr...)
}

// Get is GetJSON with a context and a client.
func Get(ctx context.Context, c *http.Client, url string, v any, hdr ...string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// PostJSON posts body to url as JSON and decodes a 2xx answer into v,
// unless v is nil. A string or []byte body is sent as it is; anything else
// is encoded. An answer other than 2xx is an error that quotes it.
func PostJSON(url string, body, v any) error {
	return Post(context.Background(), http.DefaultClient, url, body, v)
}

// Post is PostJSON with a context and a client.
func Post(ctx context.Context, c *http.Client, url string, body, v any) error {
	var data []byte
	switch b := body.(type) {
	case string:
		data = []byte(b)
	case []byte:
		data = b
	default:
		var err error
		if data, err = json.Marshal(body); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))
	}
	if v == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
