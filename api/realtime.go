package api

import (
	"net/http"
	"strconv"

	"github.com/strata-run/strata/realtime"
	"github.com/strata-run/strata/service"
)

// EnableRealtime serves GET and POST /api/realtime (API.md §8) and the
// OAuth2 redirect that answers realtime clients (§7.4) from hub, which the
// caller runs (hub.Run). Without it those routes answer 404.
func (s *Server) EnableRealtime(hub *realtime.Hub) {
	s.reg.MustRegister(hub.Collectors()...)
	// Events are shaped by ?fields= exactly as GET responses are.
	hub.SetFieldPicker(func(doc *service.Doc, spec string) any {
		return pickFields(toGeneric(doc), parseFields(spec))
	})
	s.mux.HandleFunc("GET /api/realtime", func(w http.ResponseWriter, r *http.Request) {
		s.realtimeConnect(hub, w, r)
	})
	s.mux.HandleFunc("POST /api/realtime", func(w http.ResponseWriter, r *http.Request) {
		s.realtimeSubscribe(hub, w, r)
	})
	s.mux.HandleFunc("GET /api/realtime/ws", func(w http.ResponseWriter, r *http.Request) {
		s.realtimeWebSocket(hub, w, r)
	})
	s.oauth2RedirectRoutes(hub)
}

// realtimeWebSocket serves the WebSocket transport (docs/realtime.md):
// PocketBase's realtime semantics as JSON messages on one socket.
func (s *Server) realtimeWebSocket(hub *realtime.Hub, w http.ResponseWriter, r *http.Request) {
	c, err := hub.Connect(s.clientIP(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if v := r.URL.Query().Get("resume"); v != "" {
		if err := c.ResumeFrom(v); err != nil {
			c.Close()
			s.writeError(w, r, err)
			return
		}
	}
	c.ServeWS(w, r, realtime.WSOptions{
		Auth:         requestInfo(r).Auth,
		Authenticate: s.app.Authenticate,
		Error: func(err error) (int, any) {
			status, body := errorResponse(err)
			return status, body
		},
	})
}

// realtimeConnect opens an SSE stream (API.md §8.1). No auth is read: the
// stream is bound to an identity by its first subscribe request.
func (s *Server) realtimeConnect(hub *realtime.Hub, w http.ResponseWriter, r *http.Request) {
	c, err := hub.Connect(s.clientIP(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Strata extensions (docs/realtime.md): ?resume=<cursor> replays what
	// was missed, ?cursors=1 only asks for cursors. The SDKs send neither.
	q := r.URL.Query()
	if v := q.Get("resume"); v != "" {
		if err := c.ResumeFrom(v); err != nil {
			c.Close()
			s.writeError(w, r, err)
			return
		}
	} else if q.Get("cursors") == "1" {
		c.EnableCursors()
	}
	c.Serve(w, r)
}

// realtimeSubscribe replaces a client's subscriptions (API.md §8.2).
func (s *Server) realtimeSubscribe(hub *realtime.Hub, w http.ResponseWriter, r *http.Request) {
	b, err := readBody(r, 0)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, _ := b.values["clientId"].(string)
	var topics []string
	switch v := b.values["subscriptions"].(type) {
	case []any:
		for _, t := range v {
			if str, ok := t.(string); ok {
				topics = append(topics, str)
			}
		}
	case string:
		topics = []string{v}
	}
	resume, _ := b.values["resume"].(string)
	if err := hub.SubscribeFrom(id, s.clientIP(r), requestInfo(r).Auth, topics, resume); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// changeFeed serves GET /api/collections/{collection}/changes?since=&limit=
// (docs/realtime.md).
func (s *Server) changeFeed(w http.ResponseWriter, r *http.Request) {
	c, err := s.app.RecordCollection(r.PathValue("collection"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	since, err := realtime.ParseCursor(q.Get("since"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil {
			s.writeError(w, r, badParams(err))
			return
		}
	}
	page, err := realtime.Changes(r.Context(), s.app, requestInfo(r), c, since, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, page)
}
