package connector

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the secret key's length: AES-256.
const KeySize = 32

// sealPrefix versions the sealed format, so that a later key rotation can tell old
// ciphertexts from new ones.
const sealPrefix = "v1:"

// Errors of sealing and opening.
var (
	ErrBadKey    = errors.New("connector: secret key must be 32 bytes, base64-encoded")
	ErrUnsealing = errors.New("connector: cannot decrypt the stored secret (wrong RUNYARD_SECRET_KEY, or the record was tampered with)")
)

// Cipher seals and opens connector secrets with AES-256-GCM. The connector's id is the
// additional data, so a sealed secret copied onto another connector does not open. It is
// safe for concurrent use.
type Cipher struct {
	aead cipher.AEAD
}

// ParseKey decodes a base64 (standard or URL alphabet, padded or not) 32-byte key.
func ParseKey(b64 string) ([]byte, error) {
	b64 = strings.TrimSpace(b64)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(b64); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, ErrBadKey
}

// NewCipher returns a cipher for a 32-byte key.
func NewCipher(key []byte) (*Cipher, error) {
	if len(key) != KeySize {
		return nil, ErrBadKey
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	return &Cipher{aead: aead}, nil
}

// Seal encrypts plaintext bound to connectorID: "v1:" + base64(nonce ‖ ciphertext ‖ tag).
func (c *Cipher) Seal(connectorID, plaintext string) (string, error) {
	nonce := make([]byte, c.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("connector: nonce: %w", err)
	}
	out := c.aead.Seal(nonce, nonce, []byte(plaintext), []byte(connectorID))
	return sealPrefix + base64.StdEncoding.EncodeToString(out), nil
}

// Open decrypts what Seal produced for the same connector id.
func (c *Cipher) Open(connectorID, sealed string) (string, error) {
	raw, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return "", ErrUnsealing
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	n := c.aead.NonceSize()
	if err != nil || len(b) < n+c.aead.Overhead() {
		return "", ErrUnsealing
	}
	pt, err := c.aead.Open(nil, b[:n], b[n:], []byte(connectorID))
	if err != nil {
		return "", ErrUnsealing
	}
	return string(pt), nil
}

// SealAuth moves a new clear secret of conn (Password or Token) into Auth.SecretSealed and
// clears the clear one. A connector without a new secret keeps its sealed one. conn.ID must
// be set.
func (c *Cipher) SealAuth(conn *Connector) error {
	secret := conn.Auth.Password
	if conn.Auth.Kind == AuthToken {
		secret = conn.Auth.Token
	}
	conn.Auth.Password, conn.Auth.Token = "", ""
	if secret == "" {
		return nil
	}
	if conn.ID == "" {
		return errors.New("connector: seal: the connector has no id")
	}
	sealed, err := c.Seal(conn.ID, secret)
	if err != nil {
		return err
	}
	conn.Auth.SecretSealed = sealed
	return nil
}

// OpenAuth returns conn's secret in clear.
func (c *Cipher) OpenAuth(conn *Connector) (string, error) {
	if conn.Auth.SecretSealed == "" {
		return "", nil
	}
	return c.Open(conn.ID, conn.Auth.SecretSealed)
}

// KeyFileName is the file in the data directory that holds the standalone binary's
// generated secret key.
const KeyFileName = "secret.key"

// LoadOrCreateKeyFile returns the key in dir/secret.key, creating the file with a fresh
// random key (mode 0600) when it does not exist. It serves the standalone binary when
// RUNYARD_SECRET_KEY is unset; a file readable by others is refused.
func LoadOrCreateKeyFile(dir string) ([]byte, error) {
	path := filepath.Join(dir, KeyFileName)
	if b, err := os.ReadFile(path); err == nil {
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("connector: %s is readable by other users (mode %o): chmod 600 it", path, st.Mode().Perm())
		}
		k, err := ParseKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("connector: %s: %w", path, err)
		}
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("connector: read %s: %w", path, err)
	}
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("connector: generate key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		// Another process created it first: use theirs.
		return LoadOrCreateKeyFile(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("connector: create %s: %w", path, err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("connector: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("connector: write %s: %w", path, err)
	}
	return k, nil
}
