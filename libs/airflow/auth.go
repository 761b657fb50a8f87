package airflow

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// usesJWT reports whether requests to API version v carry a JWT the client fetched:
// password auth on v2.
func (c *Client) usesJWT(v APIVersion) bool {
	return c.cfg.Auth.Kind == AuthPassword && v == V2
}

// authHeader returns the Authorization header for a request to API version v.
func (c *Client) authHeader(ctx context.Context, v APIVersion) (http.Header, error) {
	h := http.Header{}
	a := c.cfg.Auth
	switch {
	case a.Kind == AuthToken:
		h.Set("Authorization", "Bearer "+a.Token)
	case a.Kind == AuthBasic, a.Kind == AuthPassword && v == V1:
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(a.Username+":"+a.Password)))
	case a.Kind == AuthPassword:
		tok, err := c.jwt(ctx)
		if err != nil {
			return nil, err
		}
		h.Set("Authorization", "Bearer "+tok)
	}
	return h, nil
}

// jwt returns a token valid for at least TokenRenewBefore (or whose expiry is unknown),
// fetching a new one from POST {base}/auth/token when needed.
func (c *Client) jwt(ctx context.Context) (string, error) {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	if c.token != "" && (c.tokenExp.IsZero() || c.tokenExp.Sub(c.cfg.Now()) > c.renewBefore()) {
		return c.token, nil
	}
	tok, exp, err := c.fetchToken(ctx)
	if err != nil {
		return "", err
	}
	c.token, c.tokenExp = tok, exp
	c.tokenLife = 0
	if !exp.IsZero() {
		c.tokenLife = exp.Sub(c.cfg.Now())
	}
	return tok, nil
}

// renewBefore is TokenRenewBefore, but at most half a token's lifetime, so that a token
// issued for less than TokenRenewBefore is still used instead of renewed on every request.
func (c *Client) renewBefore() time.Duration {
	if c.tokenLife > 0 {
		return min(c.cfg.TokenRenewBefore, c.tokenLife/2)
	}
	return c.cfg.TokenRenewBefore
}

func (c *Client) dropToken() {
	c.tokMu.Lock()
	c.token, c.tokenExp = "", time.Time{}
	c.tokMu.Unlock()
}

// fetchToken exchanges the username and password for a JWT. Airflow 3 answers 201
// {"access_token": "..."} with no expires_in; the expiry comes from the token's exp claim,
// read without verifying the signature (only the server needs to trust it).
func (c *Client) fetchToken(ctx context.Context) (string, time.Time, error) {
	body, _ := json.Marshal(map[string]string{"username": c.cfg.Auth.Username, "password": c.cfg.Auth.Password})
	req := request{method: http.MethodPost, path: "/auth/token"}
	u := c.endpoint("/auth/token", nil)
	for attempt := 0; ; attempt++ {
		if err := c.limiter.Wait(ctx); err != nil {
			return "", time.Time{}, fmt.Errorf("airflow: POST /auth/token: %w", err)
		}
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(string(body)))
		if err != nil {
			return "", time.Time{}, fmt.Errorf("airflow: POST /auth/token: %w", err)
		}
		hr.Header.Set("Content-Type", "application/json")
		hr.Header.Set("Accept", "application/json")
		hr.Header.Set("User-Agent", "runyard-airflow-client")
		c.requests.Add(1)
		resp, err := c.http.Do(hr)
		retry := false
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return "", time.Time{}, fmt.Errorf("airflow: POST /auth/token: %w", ctx.Err())
			}
			err = fmt.Errorf("airflow: POST /auth/token: %w", err)
			retry = true
		case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated:
			var out struct {
				AccessToken string `json:"access_token"`
				JWTToken    string `json:"jwt_token"` // the key's name before Airflow 3.0 GA
			}
			derr := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
			resp.Body.Close()
			tok := out.AccessToken
			if tok == "" {
				tok = out.JWTToken
			}
			if derr != nil || tok == "" {
				return "", time.Time{}, fmt.Errorf("airflow: POST /auth/token: answer holds no access_token")
			}
			return tok, jwtExpiry(tok), nil
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			err = c.apiError(req, resp)
			retry = true
		default:
			ae := c.apiError(req, resp)
			return "", time.Time{}, fmt.Errorf("%w: %w", errBadCredentials, ae)
		}
		if !retry || attempt >= c.cfg.MaxRetries {
			return "", time.Time{}, err
		}
		c.retries.Add(1)
		t := time.NewTimer(c.backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return "", time.Time{}, fmt.Errorf("airflow: POST /auth/token: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// jwtExpiry reads the exp claim of a JWT; zero when it has none or is not a JWT.
func jwtExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(raw, &claims) != nil || claims.Exp == "" {
		return time.Time{}
	}
	f, err := claims.Exp.Float64()
	if err != nil {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}
