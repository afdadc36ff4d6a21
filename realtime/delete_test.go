package realtime_test

import (
	"slices"
	"testing"

	"github.com/strata-run/strata/realtime"
)

// TestDeleteUnderStoreRule: a delete is delivered to the clients that
// could see the record before it was deleted, also when the rule reads
// other rows (a relation chain, @collection), and the change feed returns
// the tombstone to them only.
func TestDeleteUnderStoreRule(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realtime.Config{})
	memberID, member := e.user("member")
	_, outsider := e.user("outsider")
	e.collection(`{"name":"teams","type":"base","listRule":"","viewRule":"","fields":[{"name":"members","type":"relation","collectionId":"_pb_users_auth_","maxSelect":10}]}`)
	e.collection(`{"name":"authors","type":"base","listRule":"","viewRule":"","fields":[{"name":"team","type":"relation","collectionId":"teams","maxSelect":1}]}`)
	const chain = `owner.team.members.id ?= @request.auth.id`
	e.collection(`{"name":"posts","type":"base","listRule":"` + chain + `","viewRule":"` + chain + `",
		"fields":[{"name":"owner","type":"relation","collectionId":"authors","maxSelect":1},{"name":"title","type":"text"}]}`)
	e.collection(`{"name":"memberships","type":"base","fields":[{"name":"user","type":"relation","collectionId":"_pb_users_auth_","maxSelect":1},{"name":"board","type":"text"}]}`)
	const coll = `@collection.memberships.user ?= @request.auth.id && @collection.memberships.board ?= board`
	e.collection(`{"name":"cards","type":"base","listRule":"` + coll + `","viewRule":"` + coll + `",
		"fields":[{"name":"board","type":"text"}]}`)
	e.collection(`{"name":"marker","type":"base","listRule":"","fields":[{"name":"n","type":"number"}]}`)

	team := e.must(200, "POST", "/api/collections/teams/records", e.suToken, map[string]any{"members": []string{memberID}})["id"].(string)
	author := e.must(200, "POST", "/api/collections/authors/records", e.suToken, map[string]any{"team": team})["id"].(string)
	post := e.must(200, "POST", "/api/collections/posts/records", e.suToken, map[string]any{"owner": author, "title": "t"})["id"].(string)
	e.must(200, "POST", "/api/collections/memberships/records", e.suToken, map[string]any{"user": memberID, "board": "b1"})
	card := e.must(200, "POST", "/api/collections/cards/records", e.suToken, map[string]any{"board": "b1"})["id"].(string)
	// Live checks and deletes agree: the member can read both, the
	// outsider neither.
	e.must(200, "GET", "/api/collections/posts/records/"+post, member, nil)
	e.must(200, "GET", "/api/collections/cards/records/"+card, member, nil)
	e.must(404, "GET", "/api/collections/posts/records/"+post, outsider, nil)
	e.must(404, "GET", "/api/collections/cards/records/"+card, outsider, nil)

	topics := []string{"posts/*", "posts/" + post, "cards/*", "cards/" + card, "marker/*"}
	sm, so := e.connect(), e.connect()
	e.subscribe(sm, member, topics...)
	e.subscribe(so, outsider, topics...)

	e.must(204, "DELETE", "/api/collections/posts/records/"+post, e.suToken, nil)
	e.must(204, "DELETE", "/api/collections/cards/records/"+card, e.suToken, nil)
	// Everyone receives the marker, which closes the window of expected
	// events without waiting on a clock.
	e.must(200, "POST", "/api/collections/marker/records", e.suToken, map[string]any{"n": 1})

	until := func(s *sse) map[string]string {
		got := map[string]string{}
		for {
			m := s.next(t)
			if m.event == "marker/*" {
				return got
			}
			d := decode(t, m)
			got[m.event] = d.Action + " " + d.Record["id"].(string)
		}
	}
	want := map[string]string{
		"posts/*": "delete " + post, "posts/" + post: "delete " + post,
		"cards/*": "delete " + card, "cards/" + card: "delete " + card,
	}
	got := until(sm)
	if len(got) != len(want) {
		t.Errorf("member got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("member %s: %q, want %q", k, got[k], v)
		}
	}
	if got := until(so); len(got) != 0 {
		t.Errorf("outsider got %v", got)
	}

	// The change feed: the member gets the tombstones, the outsider none.
	// The post is re-created with its id and deleted again: two tombstones
	// of one id are judged each on its own snapshot.
	e.must(200, "POST", "/api/collections/posts/records", e.suToken, map[string]any{"id": post, "owner": author})
	e.must(204, "DELETE", "/api/collections/posts/records/"+post, e.suToken, nil)
	for _, tc := range []struct {
		coll string
		ids  []string
	}{{"posts", []string{post, post}}, {"cards", []string{card}}} {
		var tombs []string
		for _, it := range e.must(200, "GET", "/api/collections/"+tc.coll+"/changes", member, nil)["items"].([]any) {
			m := it.(map[string]any)
			if m["action"] == "delete" {
				tombs = append(tombs, m["recordId"].(string))
				if m["record"] != nil {
					t.Errorf("tombstone with a record: %v", m)
				}
			}
		}
		if !slices.Equal(tombs, tc.ids) {
			t.Errorf("member %s tombstones %v, want %v", tc.coll, tombs, tc.ids)
		}
		if items := e.must(200, "GET", "/api/collections/"+tc.coll+"/changes", outsider, nil)["items"].([]any); len(items) != 0 {
			t.Errorf("outsider %s feed %v", tc.coll, items)
		}
	}
}

// TestFeedJudgesEachState: under a rule that reads other rows, each feed
// item is judged on the record as that change left it, so a record moved
// from one team to another shows its old states to the old team only.
func TestFeedJudgesEachState(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realtime.Config{})
	aID, a := e.user("a")
	bID, b := e.user("b")
	e.collection(`{"name":"teams","type":"base","listRule":"","viewRule":"","fields":[{"name":"members","type":"relation","collectionId":"_pb_users_auth_","maxSelect":10}]}`)
	const rule = `team.members.id ?= @request.auth.id`
	e.collection(`{"name":"posts","type":"base","listRule":"` + rule + `","viewRule":"` + rule + `",
		"fields":[{"name":"team","type":"relation","collectionId":"teams","maxSelect":1},{"name":"title","type":"text"}]}`)
	teamA := e.must(200, "POST", "/api/collections/teams/records", e.suToken, map[string]any{"members": []string{aID}})["id"].(string)
	teamB := e.must(200, "POST", "/api/collections/teams/records", e.suToken, map[string]any{"members": []string{bID}})["id"].(string)
	post := e.must(200, "POST", "/api/collections/posts/records", e.suToken, map[string]any{"team": teamA, "title": "for a"})["id"].(string)
	e.must(200, "PATCH", "/api/collections/posts/records/"+post, e.suToken, map[string]any{"team": teamB, "title": "for b"})

	feed := func(token string) []string {
		var out []string
		for _, it := range e.must(200, "GET", "/api/collections/posts/changes", token, nil)["items"].([]any) {
			m := it.(map[string]any)
			out = append(out, m["action"].(string)+" "+m["record"].(map[string]any)["title"].(string))
		}
		return out
	}
	if got := feed(a); !slices.Equal(got, []string{"create for a"}) {
		t.Errorf("a's feed %v", got)
	}
	if got := feed(b); !slices.Equal(got, []string{"update for b"}) {
		t.Errorf("b's feed %v", got)
	}
}
