package admin

import (
	"errors"
	"io/fs"
	"net/http"

	"github.com/camgate/camgate/internal/config"
)

// reloadConfig applies camgate.yaml as it is on disk, as SIGHUP does: the
// UI's answer to its "changed on disk" banner, since changes made here are
// refused while the file holds an edit the gateway has not read (package
// site, ErrChangedOnDisk). An invalid file is refused with 422 and every
// problem; one that cannot be applied (a port in use) with 409. Either
// way the last good config keeps running.
func (s *Server) reloadConfig(w http.ResponseWriter, r *http.Request) error {
	ch, err := s.site.Reload(r.Context())
	if err != nil {
		s.record(r, "config.reload", s.site.Path(), false, err.Error())
		var pe *fs.PathError
		var p config.Problem
		switch {
		case errors.As(err, &pe):
			return apiError{Status: http.StatusInternalServerError, Message: "cannot read the config file; the last good config keeps running: " + err.Error(), Err: err}
		case errors.As(err, &p):
			probs := config.ProblemsOf(err)
			return apiError{Status: http.StatusUnprocessableEntity, Message: "the config file was refused; the last good config keeps running: " + probs[0].Error(), Problems: probs}
		}
		return apiError{Status: http.StatusConflict, Message: "the config file could not be applied; the last good config keeps running: " + err.Error(), Err: err}
	}
	s.record(r, "config.reload", s.site.Path(), true, "")
	writeJSON(w, http.StatusOK, map[string]any{"added": nonNil(ch.Added), "removed": nonNil(ch.Removed), "replaced": nonNil(ch.Changed), "kept": len(ch.Kept)})
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
