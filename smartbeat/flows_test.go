package smartbeat

import "github.com/stk-go/stk/flow"

// Protocol completes recFlow's flow.Flow.
func (f *recFlow) Protocol() flow.Protocol { return flow.TCP }
