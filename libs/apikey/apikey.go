// Package apikey generates API keys and derives the hash under which they are stored: a key's
// value is shown once and never stored.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// Prefix marks Runyard API keys, so a leaked key is recognisable by secret scanners.
const Prefix = "ryk_"

// Generate returns a new random API key.
func Generate() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return Prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// Hash returns the stored form of key. Keys carry 256 random bits, so a fast hash is enough:
// there is nothing to brute-force.
func Hash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}
