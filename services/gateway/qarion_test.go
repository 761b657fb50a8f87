package gateway

import (
	"encoding/json"
	"testing"
)

func TestLocation(t *testing.T) {
	for _, c := range []struct{ in, field, want string }{
		{"body", "slug", `["body","slug"]`},
		{"body", "body", `["body"]`},
		{"body", "members[2].role", `["body","members",2,"role"]`},
		{"body", "grid[1][3]", `["body","grid",1,3]`},
		{"body", "pipeline.blocks[0].upstream_blocks", `["body","pipeline","blocks",0,"upstream_blocks"]`},
		{"query", "size", `["query","size"]`},
	} {
		got, _ := json.Marshal(location(c.in, c.field))
		if string(got) != c.want {
			t.Errorf("location(%q, %q) = %s, want %s", c.in, c.field, got, c.want)
		}
	}
}
