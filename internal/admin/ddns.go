package admin

import "github.com/camgate/camgate/internal/ddns"

// DDNSReporter is what the status needs from the dynamic DNS updater.
type DDNSReporter interface {
	Status() ddns.Status
}

// ddnsStatus returns the updater's status for /api/v1/status, or nil when
// there is no updater or it is off.
func (s *Server) ddnsStatus() *ddns.Status {
	if s.ddns == nil {
		return nil
	}
	st := s.ddns.Status()
	if st.State == ddns.StateOff {
		return nil
	}
	return &st
}
