package realtime_test

import (
	"slices"
	"testing"

	"github.com/strata-run/strata/realtime"
)

// TestResumeJudgesLoggedState: a replay judges each change on the record
// as that change left it, like the change feed, both when the rule needs
// other rows and when it is decided in memory. A post moved from team A to
// team B replays its create (team A's content) to A's member only and its
// update to B's member only; a resumed delete reaches those who could see
// the record before it was deleted.
func TestResumeJudgesLoggedState(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realtime.Config{})
	aID, a := e.user("a")
	bID, b := e.user("b")
	_, outsider := e.user("outsider")
	e.collection(`{"name":"teams","type":"base","listRule":"","viewRule":"","fields":[{"name":"members","type":"relation","collectionId":"_pb_users_auth_","maxSelect":10}]}`)
	const stored = `team.members.id ?= @request.auth.id`
	e.collection(`{"name":"posts","type":"base","listRule":"` + stored + `","viewRule":"` + stored + `",
		"fields":[{"name":"team","type":"relation","collectionId":"teams","maxSelect":1},{"name":"title","type":"text"}]}`)
	const mem = `owner = @request.auth.id`
	e.collection(`{"name":"notes","type":"base","listRule":"` + mem + `","viewRule":"` + mem + `",
		"fields":[{"name":"owner","type":"relation","collectionId":"_pb_users_auth_","maxSelect":1},{"name":"title","type":"text"}]}`)
	e.collection(`{"name":"marker","type":"base","listRule":"","fields":[{"name":"n","type":"number"}]}`)
	teamA := e.must(200, "POST", "/api/collections/teams/records", e.suToken, map[string]any{"members": []string{aID}})["id"].(string)
	teamB := e.must(200, "POST", "/api/collections/teams/records", e.suToken, map[string]any{"members": []string{bID}})["id"].(string)

	// The cursor every client resumes from: before any post or note.
	s := e.connectQuery("cursors=1")
	start := cursorOf(t, s.first).Cursor
	e.leave(s)

	post := e.must(200, "POST", "/api/collections/posts/records", e.suToken, map[string]any{"team": teamA, "title": "for a"})["id"].(string)
	e.must(200, "PATCH", "/api/collections/posts/records/"+post, e.suToken, map[string]any{"team": teamB, "title": "for b"})
	gone := e.must(200, "POST", "/api/collections/posts/records", e.suToken, map[string]any{"team": teamA, "title": "gone"})["id"].(string)
	e.must(204, "DELETE", "/api/collections/posts/records/"+gone, e.suToken, nil)
	note := e.must(200, "POST", "/api/collections/notes/records", e.suToken, map[string]any{"owner": aID, "title": "note for a"})["id"].(string)
	e.must(200, "PATCH", "/api/collections/notes/records/"+note, e.suToken, map[string]any{"owner": bID, "title": "note for b"})
	// The last change replayed: it closes the window of expected events
	// without waiting on a clock.
	e.must(200, "POST", "/api/collections/marker/records", e.suToken, map[string]any{"n": 1})

	replayed := func(token string) []string {
		t.Helper()
		r := e.connectQuery("resume=" + start)
		e.subscribe(r, token, "posts/*", "posts/"+post, "posts/"+gone, "notes/*", "notes/"+note, "marker/*")
		var got []string
		for {
			m := r.next(t)
			if m.event == "marker/*" {
				return got
			}
			if m.event == "PB_RESYNC" {
				t.Fatalf("resync: %s", m.data)
			}
			d := decode(t, m)
			title, _ := d.Record["title"].(string)
			got = append(got, m.event+" "+d.Action+" "+title)
		}
	}
	same := func(who string, got []string, want ...string) {
		t.Helper()
		// Events of one change come in subscription order; compare the
		// sets per change by sorting, the order of changes by position.
		if !slices.Equal(sortedRuns(got), sortedRuns(want)) {
			t.Errorf("%s replayed\n%q\nwant\n%q", who, got, want)
		}
	}
	same("a", replayed(a),
		"posts/* create for a", "posts/"+post+" create for a",
		"posts/* create gone", "posts/"+gone+" create gone",
		"posts/* delete gone", "posts/"+gone+" delete gone",
		"notes/* create note for a", "notes/"+note+" create note for a")
	same("b", replayed(b),
		"posts/* update for b", "posts/"+post+" update for b",
		"notes/* update note for b", "notes/"+note+" update note for b")
	same("outsider", replayed(outsider))
	same("guest", replayed(""))
}

// sortedRuns sorts each run of events that share their action and content
// (one change seen through several subscriptions), keeping runs in order.
func sortedRuns(evs []string) []string {
	out := slices.Clone(evs)
	key := func(s string) string {
		for i := range len(s) {
			if s[i] == ' ' {
				return s[i+1:]
			}
		}
		return s
	}
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && key(out[j]) == key(out[i]) {
			j++
		}
		slices.Sort(out[i:j])
		i = j
	}
	return out
}
