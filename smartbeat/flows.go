package smartbeat

import (
	"github.com/stk-go/stk/flow"
)

// Flows returns the listeners the Serve methods opened, for status pages.
func (m *Monitor) Flows() []flow.Flow { return m.ls.Flows() }
