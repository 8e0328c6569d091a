package smartbeat

import (
	"slices"

	"github.com/stk-go/stk/flow"
)

// Flows returns the listeners the Serve methods opened, for status pages.
func (m *Monitor) Flows() []flow.Flow {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.flows)
}
